package capture

// Column types: how each MySQL/MariaDB column value is rendered, the same
// whether it comes from the binlog (go-mysql's decoded values) or from the
// snapshot's query (the text protocol's bytes).

import (
	"database/sql"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// Table describes a captured table's columns, as one table map event (or
// the snapshot's query) gives them, and converts their values.
type Table struct {
	name  string
	names []string
	conv  []func(any) any
}

// binaryCollation is the collation id of binary strings (BLOB, VARBINARY).
const binaryCollation = 63

// TableOf derives a table's column names and value converters from a table
// map event. The
// converters give Debezium's JSON representations: integers as numbers,
// DECIMAL as a string (decimal.handling.mode=string), DATETIME as epoch
// milliseconds (io.debezium.time.Timestamp; epoch microseconds for
// precision above 3), TIMESTAMP as an ISO-8601 UTC string, ENUM as its label,
// text and JSON as strings, binary as base64.
func TableOf(t *replication.TableMapEvent) (*Table, error) {
	names := t.ColumnNameString()
	if len(names) != int(t.ColumnCount) {
		return nil, fmt.Errorf("%s.%s: %w", t.Schema, t.Table, ErrNoColumnNames)
	}
	enums, colls := t.EnumStrValueMap(), t.CollationMap()
	c := &Table{name: string(t.Table), names: names, conv: make([]func(any) any, len(names))}
	for i := range names {
		// BLOB and TEXT share a type; the binary collation tells them apart.
		text := t.IsCharacterColumn(i) && colls[i] != binaryCollation
		c.conv[i] = converter(t.ColumnType[i], t.ColumnMeta[i], text, enums[i])
	}
	return c, nil
}

func converter(typ byte, meta uint16, text bool, enum []string) func(any) any {
	switch typ {
	case mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DATETIME2:
		micro := typ == mysql.MYSQL_TYPE_DATETIME2 && meta > 3
		return func(v any) any { return datetime(v, micro) }
	case mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2:
		return func(v any) any {
			if s, ok := v.(string); ok {
				if t, err := parseDatetime(s); err == nil {
					return t.Format("2006-01-02T15:04:05.999999Z")
				}
			}
			return v
		}
	case mysql.MYSQL_TYPE_STRING:
		if enum != nil { // ENUM columns are logged as MYSQL_TYPE_STRING
			return func(v any) any { return enumLabel(v, enum) }
		}
	case mysql.MYSQL_TYPE_ENUM:
		return func(v any) any { return enumLabel(v, enum) }
	case mysql.MYSQL_TYPE_JSON:
		return func(v any) any {
			if b, ok := v.([]byte); ok {
				return string(b)
			}
			return v
		}
	}
	return func(v any) any {
		if b, ok := v.([]byte); ok {
			if text {
				return string(b)
			}
			return base64.StdEncoding.EncodeToString(b)
		}
		return v
	}
}

func enumLabel(v any, labels []string) any {
	var i int64
	switch n := v.(type) {
	case int64:
		i = n
	case int:
		i = int64(n)
	default:
		return v
	}
	if i >= 1 && int(i) <= len(labels) {
		return labels[i-1]
	}
	return ""
}

func parseDatetime(s string) (time.Time, error) {
	return time.ParseInLocation("2006-01-02 15:04:05.999999", s, time.UTC)
}

func datetime(v any, micro bool) any {
	s, ok := v.(string)
	if !ok {
		return v
	}
	if strings.HasPrefix(s, "0000-00-00") {
		return nil
	}
	t, err := parseDatetime(s)
	if err != nil {
		return s
	}
	if micro {
		return t.UnixMicro()
	}
	return t.UnixMilli()
}

// row turns one binlog row image into a column map.
func (c *Table) row(values []any) map[string]any {
	m := make(map[string]any, len(c.names))
	for i, name := range c.names {
		if i >= len(values) {
			break
		}
		v := values[i]
		if v != nil {
			v = c.conv[i](v)
		}
		m[name] = v
	}
	return m
}

// snapshotConverter gives a selected value the representation the binlog
// path gives the same column (see columnsOf).
func snapshotConverter(ct *sql.ColumnType) func([]byte) any {
	typ := strings.TrimPrefix(ct.DatabaseTypeName(), "UNSIGNED ")
	switch typ {
	case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "YEAR":
		return func(b []byte) any {
			if v, err := strconv.ParseInt(string(b), 10, 64); err == nil {
				return v
			}
			v, _ := strconv.ParseUint(string(b), 10, 64)
			return v
		}
	case "FLOAT", "DOUBLE":
		return func(b []byte) any { v, _ := strconv.ParseFloat(string(b), 64); return v }
	case "DATETIME":
		_, scale, _ := ct.DecimalSize()
		return func(b []byte) any { return datetime(string(b), scale > 3) }
	case "TIMESTAMP":
		return func(b []byte) any {
			t, err := parseDatetime(string(b))
			if err != nil {
				return string(b)
			}
			return t.Format("2006-01-02T15:04:05.999999Z")
		}
	case "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BINARY", "VARBINARY", "BIT", "GEOMETRY":
		return func(b []byte) any { return base64.StdEncoding.EncodeToString(b) }
	}
	return func(b []byte) any { return string(b) } // DECIMAL, text, ENUM, JSON, ...
}

// tableOfQuery describes the columns of a snapshot query's result, whose
// values are the text protocol's bytes.
func tableOfQuery(name string, types []*sql.ColumnType) *Table {
	t := &Table{name: name, names: make([]string, len(types)), conv: make([]func(any) any, len(types))}
	for i, ct := range types {
		t.names[i] = ct.Name()
		conv := snapshotConverter(ct)
		t.conv[i] = func(v any) any { return conv(v.([]byte)) }
	}
	return t
}
