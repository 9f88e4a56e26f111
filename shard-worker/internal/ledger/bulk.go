package ledger

import (
	"context"
	"database/sql"
	"strings"
)

// bulk builds multi-row INSERT statements, at most maxRows rows each.
type bulk struct {
	head string // "INSERT INTO t (a, b) VALUES "
	tail string // e.g. " ON DUPLICATE KEY UPDATE ..."
	cols int
	args []any
}

const maxRows = 1000

func (b *bulk) add(vals ...any) { b.args = append(b.args, vals...) }

func (b *bulk) rows() int { return len(b.args) / b.cols }

func (b *bulk) exec(ctx context.Context, tx *sql.Tx) error {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", b.cols), ",") + ")"
	for start := 0; start < len(b.args); start += maxRows * b.cols {
		end := min(start+maxRows*b.cols, len(b.args))
		n := (end - start) / b.cols
		var q strings.Builder
		q.Grow(len(b.head) + n*(len(row)+1) + len(b.tail))
		q.WriteString(b.head)
		for i := range n {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(row)
		}
		q.WriteString(b.tail)
		if _, err := tx.ExecContext(ctx, q.String(), b.args[start:end]...); err != nil {
			return err
		}
	}
	return nil
}

// inList renders "?,?,?" for n values.
func inList(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

// queryIn runs query (which has one %s for an IN list) over ids in chunks
// and calls scan for every row.
func queryIn[T any](ctx context.Context, tx *sql.Tx, query string, ids []T, scan func(*sql.Rows) error, extra ...any) error {
	for start := 0; start < len(ids); start += maxRows {
		end := min(start+maxRows, len(ids))
		args := make([]any, 0, end-start+len(extra))
		for _, id := range ids[start:end] {
			args = append(args, id)
		}
		args = append(args, extra...)
		rows, err := tx.QueryContext(ctx, strings.Replace(query, "%s", inList(end-start), 1), args...)
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
