package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Rows is a multi-row insert into one table that can be written either
// with LOAD DATA LOCAL INFILE, streamed from memory (about a third of the
// server's work per row and half the client's is parsing and converting
// SQL literals, which LOAD DATA does not have), or with multi-row INSERTs.
// Values are nil (NULL), int, int64, string, bool, time.Time (written in
// UTC) or a fmt.Stringer (money).
type Rows struct {
	Table   string
	Columns []string
	vals    []any
}

// Add appends one row's values, one per column.
func (r *Rows) Add(vals ...any) { r.vals = append(r.vals, vals...) }

// Len is the number of rows added.
func (r *Rows) Len() int { return len(r.vals) / len(r.Columns) }

// ErrLoadNotStrict is returned by Rows.Load when the server skipped a
// row or changed a value (LOAD DATA LOCAL turns the errors an INSERT
// would fail with, a duplicate key or a value that does not fit, into
// warnings): the caller's transaction must not commit.
var ErrLoadNotStrict = errors.New("LOAD DATA did not write every row as given")

// Insert writes the rows with LOAD DATA LOCAL INFILE when load is true
// (the server must allow local_infile, see LocalInfile), otherwise with
// multi-row INSERTs. Either way it fails unless every row was written as
// given.
func (r *Rows) Insert(ctx context.Context, tx *sql.Tx, load bool) error {
	if r.Len() == 0 {
		return nil
	}
	if load {
		return r.Load(ctx, tx)
	}
	b := Bulk{Head: "INSERT INTO " + r.Table + " (" + strings.Join(r.Columns, ", ") + ") VALUES ", Cols: len(r.Columns), args: r.vals}
	for i, v := range b.args {
		if _, ok := v.(time.Time); !ok {
			if s, ok := v.(fmt.Stringer); ok { // money: its text, never its number of cents
				b.args[i] = s.String()
			}
		}
	}
	return b.Exec(ctx, tx)
}

var readers atomic.Uint64

// Load writes the rows with one LOAD DATA LOCAL INFILE, encoding them as
// the server reads them. It checks that the server wrote every row and
// reported no warning, so a row is never skipped or cut where an INSERT
// would have failed (ErrLoadNotStrict).
func (r *Rows) Load(ctx context.Context, tx *sql.Tx) error {
	if r.Len() == 0 {
		return nil
	}
	name := "shopledger-" + strconv.FormatUint(readers.Add(1), 10)
	mysql.RegisterReaderHandler(name, func() io.Reader { return &tsvReader{r: r} })
	defer mysql.DeregisterReaderHandler(name)
	res, err := tx.ExecContext(ctx, "LOAD DATA LOCAL INFILE 'Reader::"+name+"' INTO TABLE "+r.Table+
		` CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n' (`+strings.Join(r.Columns, ", ")+")")
	if err != nil {
		return fmt.Errorf("load %s: %w", r.Table, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("load %s: %w", r.Table, err)
	}
	var warnings int
	if err := tx.QueryRowContext(ctx, "SELECT @@warning_count").Scan(&warnings); err != nil {
		return fmt.Errorf("load %s: %w", r.Table, err)
	}
	if n == int64(r.Len()) && warnings == 0 {
		return nil
	}
	var msgs []string
	err = Each(ctx, tx, "SHOW WARNINGS LIMIT 3", func(rows *sql.Rows) error {
		var level, msg string
		var code int
		if err := rows.Scan(&level, &code, &msg); err != nil {
			return err
		}
		msgs = append(msgs, msg)
		return nil
	})
	if err != nil {
		msgs = append(msgs, err.Error())
	}
	return fmt.Errorf("load %s: %w: %d of %d rows written, %d warnings: %s", r.Table, ErrLoadNotStrict, n, r.Len(), warnings, strings.Join(msgs, "; "))
}

// LocalInfile reports whether the server lets clients LOAD DATA LOCAL
// INFILE (MariaDB's default, off by default on MySQL 8).
func LocalInfile(ctx context.Context, db Querier) (bool, error) {
	var on bool
	rows, err := db.QueryContext(ctx, "SELECT @@local_infile")
	if err != nil {
		return false, fmt.Errorf("read local_infile: %w", err)
	}
	defer rows.Close()
	if rows.Next() {
		if err := rows.Scan(&on); err != nil {
			return false, fmt.Errorf("read local_infile: %w", err)
		}
	}
	return on, rows.Err()
}

// LoadRefused reports errors of a LOAD DATA LOCAL INFILE the server (or
// the connection) does not allow: local_infile was switched off.
func LoadRefused(err error) bool {
	var me *mysql.MySQLError
	// 1148: the used command is not allowed; 3948 (MySQL) and 4166
	// (MariaDB): loading local data is disabled.
	return errors.As(err, &me) && (me.Number == 1148 || me.Number == 3948 || me.Number == 4166)
}

// tsvReader encodes rows in LOAD DATA's default format (tab between
// fields, newline after rows, backslash escapes, \N for NULL) as the
// driver reads them, so the server parses a packet while the next is
// encoded.
type tsvReader struct {
	r   *Rows
	row int
	buf []byte
	off int
}

const tsvChunk = 16 << 10 // the driver's packet size for LOAD DATA

func (t *tsvReader) Read(p []byte) (int, error) {
	if t.off == len(t.buf) {
		if t.row == t.r.Len() {
			return 0, io.EOF
		}
		t.buf, t.off = t.buf[:0], 0
		cols := len(t.r.Columns)
		for t.row < t.r.Len() && len(t.buf) < tsvChunk {
			for i, v := range t.r.vals[t.row*cols : (t.row+1)*cols] {
				if i > 0 {
					t.buf = append(t.buf, '\t')
				}
				var ok bool
				if t.buf, ok = appendField(t.buf, v); !ok {
					return 0, fmt.Errorf("sqldb.Rows: column %s: unsupported value of type %T", t.r.Columns[i], v)
				}
			}
			t.buf = append(t.buf, '\n')
			t.row++
		}
	}
	n := copy(p, t.buf[t.off:])
	t.off += n
	return n, nil
}

// appendField appends v as one field of LOAD DATA's default format; ok
// is false for a type Rows does not take.
func appendField(b []byte, v any) (_ []byte, ok bool) {
	switch v := v.(type) {
	case nil:
		return append(b, `\N`...), true
	case int:
		return strconv.AppendInt(b, int64(v), 10), true
	case int64:
		return strconv.AppendInt(b, v, 10), true
	case bool:
		if v {
			return append(b, '1'), true
		}
		return append(b, '0'), true
	case string:
		return appendEscaped(b, v), true
	case time.Time:
		return v.UTC().AppendFormat(b, "2006-01-02 15:04:05.000000"), true
	case fmt.Stringer:
		return appendEscaped(b, v.String()), true
	}
	return b, false
}

// appendEscaped escapes what LOAD DATA would read as a separator or an
// escape: backslash, tab, newline, and NUL for good measure.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case 0:
			b = append(b, '\\', '0')
		default:
			b = append(b, c)
		}
	}
	return b
}
