package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/money"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/schema"
)

// loadTable is a table of every kind of value sqldb.Rows writes.
const loadTable = `CREATE TABLE %s (
	id BIGINT NOT NULL PRIMARY KEY,
	s  VARCHAR(40) NULL,
	n  INT NULL,
	t  DATETIME(3) NULL,
	d  DECIMAL(18,2) NULL,
	b  BOOLEAN NULL)`

// Rows writes the same rows with LOAD DATA LOCAL INFILE as with INSERTs,
// whatever the strings hold (separators, escapes, \N, NUL, non-ASCII).
func TestRowsLoadEqualsInsert(t *testing.T) {
	db := loadDB(t)
	ctx := context.Background()
	at := time.Date(2025, 10, 15, 17, 41, 40, 18_000_000, time.UTC)
	strs := []string{"plain", "tab\there", "new\nline", `back\slash`, "nul\x00byte", `\N`, "", "üñí 🙂", "cr\r\nlf", `ends\`, "'quote\"", "\\t"}
	for _, load := range []bool{false, true} {
		table := fmt.Sprintf("rows_load_%v", load)
		if _, err := db.ExecContext(ctx, fmt.Sprintf(loadTable, table)); err != nil {
			t.Fatal(err)
		}
		r := sqldb.Rows{Table: table, Columns: []string{"id", "s", "n", "t", "d", "b"}}
		for i, s := range strs {
			r.Add(int64(i), s, i*7, at.Add(time.Duration(i)*time.Hour), money.Cents(-12345+i), i%2 == 0)
		}
		r.Add(int64(len(strs)), nil, nil, nil, nil, nil)
		inTx(t, db, func(tx *sql.Tx) error { return r.Insert(ctx, tx, load) })
	}
	got := map[bool][]string{}
	for _, load := range []bool{false, true} {
		err := sqldb.Each(ctx, db, fmt.Sprintf("SELECT id, HEX(s), n, t, d, b FROM rows_load_%v ORDER BY id", load), func(rows *sql.Rows) error {
			var id int64
			var s, n, ts, d, b sql.NullString
			if err := rows.Scan(&id, &s, &n, &ts, &d, &b); err != nil {
				return err
			}
			got[load] = append(got[load], fmt.Sprint(id, s, n, ts, d, b))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(got[true]) != len(strs)+1 {
		t.Fatalf("LOAD DATA wrote %d rows, want %d", len(got[true]), len(strs)+1)
	}
	for i := range got[false] {
		if got[true][i] != got[false][i] {
			t.Errorf("row %d: LOAD DATA wrote %s, INSERT %s", i, got[true][i], got[false][i])
		}
	}
	var s string
	var d string
	if err := db.QueryRowContext(ctx, "SELECT s, d FROM rows_load_true WHERE id = 4").Scan(&s, &d); err != nil || s != strs[4] || d != "-123.41" {
		t.Errorf("row 4 = %q %s (%v), want %q -123.41", s, d, err, strs[4])
	}
}

// A row LOAD DATA LOCAL would skip (a duplicate key) or change (a value
// too long) fails the load, as it fails an INSERT.
func TestRowsLoadIsStrict(t *testing.T) {
	db := loadDB(t)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, fmt.Sprintf(loadTable, "strict")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		rows [][]any
	}{
		{"duplicate key", [][]any{{1, "a"}, {1, "b"}}},
		{"value too long", [][]any{{2, strings.Repeat("x", 41)}}},
		{"not a number", [][]any{{3, "x"}, {"three", "y"}}},
	}
	for _, c := range cases {
		for _, load := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/load=%v", c.name, load), func(t *testing.T) {
				r := sqldb.Rows{Table: "strict", Columns: []string{"id", "s"}}
				for _, row := range c.rows {
					r.Add(row...)
				}
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback()
				err = r.Insert(ctx, tx, load)
				if err == nil {
					t.Fatalf("Insert(%v, load=%v) = nil, want an error", c.rows, load)
				}
				if load && !errors.Is(err, sqldb.ErrLoadNotStrict) {
					t.Errorf("Insert(%v, load=true) = %v, want ErrLoadNotStrict", c.rows, err)
				}
			})
		}
	}
}

func loadDB(t *testing.T) *sql.DB {
	t.Helper()
	inst := stacktest.MariaDB(t)
	db := stacktest.Database(t, inst, "shop", schema.Shard)
	on, err := sqldb.LocalInfile(context.Background(), db)
	if err != nil || !on {
		t.Fatalf("LocalInfile = %v, %v; want the test servers to allow LOAD DATA LOCAL", on, err)
	}
	return db
}

func inTx(t *testing.T, db *sql.DB, f func(*sql.Tx) error) {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}
