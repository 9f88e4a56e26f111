// Package capture reads one shard's binlog as a replica (go-mysql) and
// publishes every row change of the configured tables to Kafka as a Debezium
// change event without schema, keyed per table; it stores its position in a
// compacted Kafka topic and advances it only at transaction boundaries, after
// Kafka acknowledged every earlier message.
package capture

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/shopledger/shopledger/internal/cdc"
)

// Envelope is a Debezium change event value without schema.
type Envelope struct {
	Before map[string]any `json:"before"`
	After  map[string]any `json:"after"`
	Source Source         `json:"source"`
	Op     string         `json:"op"` // c, u, d, or r (snapshot read)
	TsMs   int64          `json:"ts_ms"`
}

// Source is the envelope's source block, shared with the consumers.
type Source = cdc.Source

// Version is the producer's version in source.version.
const Version = "shopledger-cdc-1"

// Operations.
const (
	OpCreate = cdc.OpCreate
	OpUpdate = cdc.OpUpdate
	OpDelete = cdc.OpDelete
	OpRead   = cdc.OpRead
)

// columns describes a table map event's columns for conversion.
type columns struct {
	names []string
	conv  []func(any) any
}

// ErrNoColumnNames is returned for a table map event without column names:
// the server must run with binlog_row_metadata=FULL.
var ErrNoColumnNames = fmt.Errorf("binlog carries no column names: set binlog_row_metadata=FULL on the server")

// binaryCollation is the collation id of binary strings (BLOB, VARBINARY).
const binaryCollation = 63

// columnsOf derives names and value converters from a table map event. The
// converters give Debezium's JSON representations: integers as numbers,
// DECIMAL as a string (decimal.handling.mode=string), DATETIME as epoch
// milliseconds (io.debezium.time.Timestamp; epoch microseconds for
// precision above 3), TIMESTAMP as an ISO-8601 UTC string, ENUM as its label,
// text and JSON as strings, binary as base64.
func columnsOf(t *replication.TableMapEvent) (*columns, error) {
	names := t.ColumnNameString()
	if len(names) != int(t.ColumnCount) {
		return nil, fmt.Errorf("%s.%s: %w", t.Schema, t.Table, ErrNoColumnNames)
	}
	enums, colls := t.EnumStrValueMap(), t.CollationMap()
	c := &columns{names: names, conv: make([]func(any) any, len(names))}
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
func (c *columns) row(values []any) map[string]any {
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
