package capture

// information_schema: what the snapshot derives its columns from, and what
// completes a binlog table map (TINYINT(1), default values).

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// infoColumn is a column as information_schema.COLUMNS describes it.
type infoColumn struct {
	name       string
	dataType   string // lower case: int, varchar, ...
	columnType string // lower case: int(10) unsigned, enum('a','b'), ...
	extra      string
	nullable   bool
	// keySeq is the column's place in the primary key, from 1; 0 when
	// not in it.
	keySeq int
	// def is COLUMN_DEFAULT; nil when SQL NULL.
	def *string
	// quoted says that def quotes string literals and spells a NULL
	// default NULL (MariaDB 10.2.7 and later); MySQL does neither.
	quoted            bool
	numericPrecision  int64
	datetimePrecision int64
	octetLength       int64
}

// Schema reads the columns of a database's tables from information_schema,
// caching each table's until Forget (a DDL statement in the binlog).
type Schema struct {
	db       *sql.DB
	database string
	quoted   bool

	mu    sync.Mutex
	cache map[string][]infoColumn
}

// NewSchema returns the schema of database on db, a server of flavor
// (mysql or mariadb).
func NewSchema(db *sql.DB, database, flavor string) *Schema {
	return &Schema{db: db, database: database, quoted: flavor == "mariadb", cache: map[string][]infoColumn{}}
}

// Forget drops what was read, after a DDL statement.
func (s *Schema) Forget() {
	s.mu.Lock()
	clear(s.cache)
	s.mu.Unlock()
}

// columns returns table's columns in their order, primary key columns
// marked; none for a table that does not exist (any more).
func (s *Schema) columns(ctx context.Context, table string) ([]infoColumn, error) {
	s.mu.Lock()
	cols, ok := s.cache[table]
	s.mu.Unlock()
	if ok {
		return cols, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT COLUMN_NAME, LOWER(DATA_TYPE), LOWER(COLUMN_TYPE), EXTRA, IS_NULLABLE, COLUMN_DEFAULT,
		COALESCE(NUMERIC_PRECISION, 0), COALESCE(DATETIME_PRECISION, 0), COALESCE(CHARACTER_OCTET_LENGTH, 0)
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, s.database, table)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var c infoColumn
		var nullable string
		var def sql.NullString
		if err := rows.Scan(&c.name, &c.dataType, &c.columnType, &c.extra, &nullable, &def, &c.numericPrecision,
			&c.datetimePrecision, &c.octetLength); err != nil {
			return nil, fmt.Errorf("columns of %s: %w", table, err)
		}
		c.nullable, c.quoted = nullable == "YES", s.quoted
		if def.Valid {
			c.def = &def.String
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	pk, err := s.primaryKey(ctx, table)
	if err != nil {
		return nil, err
	}
	for seq, name := range pk {
		for i := range cols {
			if cols[i].name == name {
				cols[i].keySeq = seq + 1
			}
		}
	}
	s.mu.Lock()
	s.cache[table] = cols
	s.mu.Unlock()
	return cols, nil
}

// primaryKey returns the primary key's columns in key order.
func (s *Schema) primaryKey(ctx context.Context, table string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT COLUMN_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX`, s.database, table)
	if err != nil {
		return nil, fmt.Errorf("primary key of %s: %w", table, err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// defaultOf returns the schema default of c as Debezium writes it (the
// literal converted as a value of the column; CURRENT_TIMESTAMP as the
// epoch), or nil: no default, a NULL default, an expression.
func defaultOf(c *column, ic *infoColumn) []byte {
	if ic.def == nil || strings.Contains(strings.ToLower(ic.extra), "auto_increment") {
		return nil
	}
	d := *ic.def
	lower := strings.ToLower(d)
	expr := strings.Contains(strings.ToUpper(ic.extra), "DEFAULT_GENERATED") // MySQL
	if ic.quoted {
		switch {
		case d == "NULL":
			return nil
		case strings.HasPrefix(d, "'"):
			s, _, ok := unquote(d)
			if !ok {
				return nil
			}
			d = s
		case strings.HasPrefix(lower, "b'") || isNumber(d):
		default:
			expr = true
		}
	}
	if expr {
		if !strings.HasPrefix(lower, "current_timestamp") && !strings.HasPrefix(lower, "now(") && !strings.HasPrefix(lower, "localtimestamp") {
			return nil
		}
		switch c.kind {
		case kindDatetime, kindDatetimeMicro:
			return []byte("0")
		case kindTimestamp:
			return []byte(`"1970-01-01T00:00:00Z"`)
		}
		return nil
	}
	switch c.kind {
	case kindBits, kindBoolean:
		if strings.HasPrefix(lower, "b'") && strings.HasSuffix(d, "'") {
			v, err := strconv.ParseUint(d[2:len(d)-1], 2, 64)
			if err != nil {
				return nil
			}
			if c.kind == kindBoolean {
				return strconv.AppendBool(nil, v != 0)
			}
			return appendBits(nil, c, int64(v))
		}
	}
	b := appendColumn(nil, c, d)
	if string(b) == "null" {
		return nil
	}
	return b
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// parseLabels reads the labels of enum('a','b”c') or set(...).
func parseLabels(columnType string) []string {
	open, end := strings.IndexByte(columnType, '('), strings.LastIndexByte(columnType, ')')
	if open < 0 || end < open {
		return nil
	}
	var labels []string
	s := columnType[open+1 : end]
	for len(s) > 0 && s[0] == '\'' {
		label, rest, ok := unquote(s)
		if !ok {
			break
		}
		labels = append(labels, label)
		s = strings.TrimPrefix(rest, ",")
	}
	return labels
}

// unquote reads a SQL string literal at the start of s (” and \ escapes)
// and returns it and what follows.
func unquote(s string) (string, string, bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == '\'' && i+1 < len(s) && s[i+1] == '\'':
			b.WriteByte('\'')
			i++
		case s[i] == '\'':
			return b.String(), s[i+1:], true
		case s[i] == '\\' && i+1 < len(s):
			i++
			b.WriteByte(unescape(s[i]))
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", false
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 't':
		return '\t'
	case 'r':
		return '\r'
	case '0':
		return 0
	case 'b':
		return '\b'
	case 'Z':
		return 26
	}
	return c
}
