package sqldb

import (
	"context"
	"database/sql"
	"strings"
)

// MaxRows is how many rows one bulk statement or IN list carries at most.
const MaxRows = 1000

// Execer runs statements: a *sql.DB or a *sql.Tx.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Querier runs queries: a *sql.DB or a *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Bulk builds multi-row statements of up to MaxRows rows each:
// Head + "(?,…),(?,…)" + Tail.
type Bulk struct {
	Head string // e.g. "INSERT INTO t (a, b) VALUES "
	Tail string // e.g. " ON DUPLICATE KEY UPDATE ..."
	Cols int    // values per row
	args []any
}

// Add appends one row's values (Cols of them).
func (b *Bulk) Add(vals ...any) { b.args = append(b.args, vals...) }

// Exec runs the statements for every row added; none if no row was.
func (b *Bulk) Exec(ctx context.Context, db Execer) error {
	_, err := b.ExecCount(ctx, db)
	return err
}

// ExecCount is Exec returning the rows affected.
func (b *Bulk) ExecCount(ctx context.Context, db Execer) (int64, error) {
	var affected int64
	row := "(" + placeholders(b.Cols) + ")"
	for start := 0; start < len(b.args); start += MaxRows * b.Cols {
		end := min(start+MaxRows*b.Cols, len(b.args))
		n := (end - start) / b.Cols
		var q strings.Builder
		q.Grow(len(b.Head) + n*(len(row)+1) + len(b.Tail))
		q.WriteString(b.Head)
		for i := range n {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(row)
		}
		q.WriteString(b.Tail)
		res, err := db.ExecContext(ctx, q.String(), b.args[start:end]...)
		if err != nil {
			return affected, err
		}
		rows, _ := res.RowsAffected()
		affected += rows
	}
	return affected, nil
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

// QueryIn runs query, whose one %s stands for an IN list, over ids in chunks
// of MaxRows, with extra arguments after the list, and calls scan for every
// row.
func QueryIn[T any](ctx context.Context, db Querier, query string, ids []T, scan func(*sql.Rows) error, extra ...any) error {
	for start := 0; start < len(ids); start += MaxRows {
		end := min(start+MaxRows, len(ids))
		args := make([]any, 0, end-start+len(extra))
		for _, id := range ids[start:end] {
			args = append(args, id)
		}
		args = append(args, extra...)
		rows, err := db.QueryContext(ctx, strings.Replace(query, "%s", placeholders(end-start), 1), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := scan(rows); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// ExecIn runs statement, whose one %s stands for an IN list, over ids in
// chunks of MaxRows; nothing when ids is empty.
func ExecIn[T any](ctx context.Context, db Execer, statement string, ids []T) error {
	for start := 0; start < len(ids); start += MaxRows {
		end := min(start+MaxRows, len(ids))
		args := make([]any, 0, end-start)
		for _, id := range ids[start:end] {
			args = append(args, id)
		}
		if _, err := db.ExecContext(ctx, strings.Replace(statement, "%s", placeholders(end-start), 1), args...); err != nil {
			return err
		}
	}
	return nil
}

// Each runs query and calls scan for every row.
func Each(ctx context.Context, db Querier, query string, scan func(*sql.Rows) error, args ...any) error {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
