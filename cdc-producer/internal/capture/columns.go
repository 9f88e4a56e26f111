package capture

// Column types: what each MySQL/MariaDB column is in Debezium's terms (its
// Kafka Connect schema type and semantic name, as Debezium's MariaDB and
// MySQL connectors write them with decimal.handling.mode=string,
// time.precision.mode=adaptive_time_microseconds,
// bigint.unsigned.handling.mode=long, binary.handling.mode=bytes and
// TINYINT(1) as boolean), derived from a binlog table map or from
// information_schema, the same either way, so that a row reads the same
// from the snapshot and from the binlog.

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// kind is how a column's values are rendered.
type kind uint8

// The kinds of columns.
const (
	kindInteger       kind = iota // TINYINT..BIGINT: a JSON number (int16, int32 or int64)
	kindBoolean                   // BOOLEAN/TINYINT(1), BIT(1): true or false
	kindBits                      // BIT(n>1): bytes, little-endian, io.debezium.data.Bits
	kindFloat                     // FLOAT: float
	kindDouble                    // DOUBLE: double
	kindDecimal                   // DECIMAL: its digits as a string
	kindDate                      // DATE: days since the epoch, io.debezium.time.Date
	kindTime                      // TIME: microseconds, io.debezium.time.MicroTime
	kindDatetime                  // DATETIME(0-3): epoch ms, io.debezium.time.Timestamp
	kindDatetimeMicro             // DATETIME(4-6): epoch µs, io.debezium.time.MicroTimestamp
	kindTimestamp                 // TIMESTAMP: ISO-8601 UTC string, io.debezium.time.ZonedTimestamp
	kindYear                      // YEAR: io.debezium.time.Year
	kindEnum                      // ENUM: its label, io.debezium.data.Enum
	kindSet                       // SET: its labels joined by commas, io.debezium.data.EnumSet
	kindJSON                      // MySQL's JSON: its text, io.debezium.data.Json
	kindText                      // CHAR, VARCHAR, TEXT (and MariaDB's JSON, a LONGTEXT)
	kindBinary                    // BINARY, VARBINARY, BLOB (and spatial types): bytes, base64
)

// column is one column: how its values are written and its schema.
type column struct {
	name     string
	kind     kind
	intType  string // kindInteger: int16, int32 or int64
	unsigned bool
	optional bool
	// size is the bits of a BIT, the bytes a BINARY(n) is padded to (0 for
	// other binary types), the fractional digits of a TIME, DATETIME or
	// TIMESTAMP.
	size   int
	labels []string // ENUM and SET
	def    []byte   // the schema's default value as JSON; nil for none
}

// Table describes a captured table's columns, as one table map event (with
// information_schema's details) or the snapshot's information_schema gives
// them, and caches their schemas.
type Table struct {
	name  string
	topic string // set by the encoder
	cols  []column
	// pk holds the indexes of the primary key's columns, the default key.
	pk []int
	// schemas caches the encoded schemas and key shapes, built on first
	// use.
	schemas tableSchemas
	// mapped is what the table map the table was derived from said of its
	// columns (copied: go-mysql may reuse the event's buffer), to tell
	// whether the next table map of the same id is the same; nil for the
	// snapshot's.
	mapped []byte
	// fields are the columns' names as JSON object keys, `"name":`,
	// written once rather than escaped again for every row.
	fields [][]byte
}

// field returns column i's name as a JSON object key with its colon.
func (t *Table) field(i int) []byte {
	if t.fields == nil {
		t.fields = make([][]byte, len(t.cols))
		for j := range t.cols {
			t.fields[j] = append(appendString(nil, t.cols[j].name), ':')
		}
	}
	return t.fields[i]
}

// appendFingerprint appends what a table map says of its columns.
func appendFingerprint(b []byte, tm *replication.TableMapEvent) []byte {
	b = append(b, tm.ColumnType...)
	for _, m := range tm.ColumnMeta {
		b = append(b, byte(m), byte(m>>8))
	}
	b = append(b, tm.NullBitmap...)
	b = append(b, tm.SignednessBitmap...)
	for _, n := range tm.ColumnName {
		b = append(b, n...)
		b = append(b, 0)
	}
	return b
}

// sameMap reports whether a table map's fingerprint is the one t was
// derived from.
func (t *Table) sameMap(fp []byte) bool { return t.mapped != nil && bytes.Equal(t.mapped, fp) }

// Name is the table's name.
func (t *Table) Name() string { return t.name }

// index returns the index of column name, or -1.
func (t *Table) index(name string) int {
	for i := range t.cols {
		if t.cols[i].name == name {
			return i
		}
	}
	return -1
}

// value returns the value of column name in row as a plain Go value (a
// string for text, JSON, DECIMAL and an ENUM's label, an int64 for an
// integer, what go-mysql decoded otherwise), or nil for NULL or no such
// column; for the outbox router, which routes by column values.
func (t *Table) value(row []any, name string) any {
	i := t.index(name)
	if i < 0 || i >= len(row) || row[i] == nil {
		return nil
	}
	c, v := &t.cols[i], row[i]
	switch c.kind {
	case kindText, kindJSON, kindDecimal:
		if b, ok := v.([]byte); ok {
			return string(b)
		}
	case kindEnum:
		if n, ok := toInt(v); ok && n >= 1 && int(n) <= len(c.labels) {
			return c.labels[n-1]
		}
		if b, ok := v.([]byte); ok {
			return string(b)
		}
	case kindInteger:
		if n, ok := intOf(v); ok {
			return n
		}
	}
	return v
}

// binaryCollation is the collation id of binary strings (BINARY, BLOB).
const binaryCollation = 63

// tableOf derives a table's columns from a table map event (which needs
// binlog_row_metadata=FULL for names, signedness, labels and character
// sets), completed by info, the table's information_schema columns, for
// what the binlog does not carry: TINYINT(1), default values. info may be
// nil; a column it lacks or whose type differs (a later ALTER TABLE) is
// derived from the table map alone.
func tableOf(t *replication.TableMapEvent, info []infoColumn) (*Table, error) {
	names := t.ColumnNameString()
	if len(names) != int(t.ColumnCount) {
		return nil, fmt.Errorf("%s.%s: %w", t.Schema, t.Table, ErrNoColumnNames)
	}
	unsigned, colls := t.UnsignedMap(), t.CollationMap()
	enums, sets := t.EnumStrValueMap(), t.SetStrValueMap()
	tbl := &Table{name: string(t.Table), cols: make([]column, len(names)), mapped: appendFingerprint(nil, t)}
	for i, name := range names {
		c := column{name: name, unsigned: unsigned[i], optional: true}
		if ok, null := t.Nullable(i); ok {
			c.optional = null
		}
		typ, meta := t.ColumnType[i], t.ColumnMeta[i]
		if typ == mysql.MYSQL_TYPE_STRING && meta >= 256 { // CHAR, BINARY, ENUM, SET: the real type in meta
			if real := byte(meta >> 8); real == mysql.MYSQL_TYPE_ENUM || real == mysql.MYSQL_TYPE_SET {
				typ = real
			} else {
				// The length's high bits are folded into the real type byte.
				meta = uint16(int(meta&0xff) | int((real&0x30)^0x30)<<4)
			}
		}
		if err := c.fromBinlog(typ, meta, colls[i] == binaryCollation || !t.IsCharacterColumn(i), enums[i], sets[i]); err != nil {
			return nil, fmt.Errorf("%s.%s column %s: %w", t.Schema, t.Table, name, err)
		}
		if ic := findInfo(info, name); ic != nil {
			c.complete(ic)
		}
		tbl.cols[i] = c
	}
	for _, k := range t.PrimaryKey {
		if int(k) < len(names) {
			tbl.pk = append(tbl.pk, int(k))
		}
	}
	return tbl, nil
}

// fromBinlog sets the kind and size from a table map's column type, meta
// data and character set.
func (c *column) fromBinlog(typ byte, meta uint16, binary bool, enum, set []string) error {
	switch typ {
	case mysql.MYSQL_TYPE_TINY:
		c.kind, c.intType = kindInteger, "int16"
	case mysql.MYSQL_TYPE_SHORT:
		c.kind, c.intType = kindInteger, "int16"
		if c.unsigned {
			c.intType = "int32"
		}
	case mysql.MYSQL_TYPE_INT24:
		c.kind, c.intType = kindInteger, "int32"
	case mysql.MYSQL_TYPE_LONG:
		c.kind, c.intType = kindInteger, "int32"
		if c.unsigned {
			c.intType = "int64"
		}
	case mysql.MYSQL_TYPE_LONGLONG:
		c.kind, c.intType = kindInteger, "int64"
	case mysql.MYSQL_TYPE_BIT:
		c.size = int(meta>>8)*8 + int(meta&0xff)
		c.kind = kindBits
		if c.size == 1 {
			c.kind = kindBoolean
		}
	case mysql.MYSQL_TYPE_FLOAT:
		c.kind = kindFloat
	case mysql.MYSQL_TYPE_DOUBLE:
		c.kind = kindDouble
	case mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_DECIMAL:
		c.kind = kindDecimal
	case mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE:
		c.kind = kindDate
	case mysql.MYSQL_TYPE_TIME:
		c.kind = kindTime
	case mysql.MYSQL_TYPE_TIME2:
		c.kind, c.size = kindTime, int(meta)
	case mysql.MYSQL_TYPE_DATETIME:
		c.kind = kindDatetime
	case mysql.MYSQL_TYPE_DATETIME2:
		c.kind, c.size = kindDatetime, int(meta)
		if meta > 3 {
			c.kind = kindDatetimeMicro
		}
	case mysql.MYSQL_TYPE_TIMESTAMP:
		c.kind = kindTimestamp
	case mysql.MYSQL_TYPE_TIMESTAMP2:
		c.kind, c.size = kindTimestamp, int(meta)
	case mysql.MYSQL_TYPE_YEAR:
		c.kind = kindYear
	case mysql.MYSQL_TYPE_ENUM:
		c.kind, c.labels = kindEnum, enum
	case mysql.MYSQL_TYPE_SET:
		c.kind, c.labels = kindSet, set
	case mysql.MYSQL_TYPE_JSON:
		c.kind = kindJSON
	case mysql.MYSQL_TYPE_STRING:
		c.kind = kindText
		if binary {
			c.kind, c.size = kindBinary, int(meta) // BINARY(n) is padded to n
		}
	case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_BLOB, mysql.MYSQL_TYPE_TINY_BLOB,
		mysql.MYSQL_TYPE_MEDIUM_BLOB, mysql.MYSQL_TYPE_LONG_BLOB:
		c.kind = kindText
		if binary {
			c.kind = kindBinary
		}
	case mysql.MYSQL_TYPE_GEOMETRY:
		c.kind = kindBinary
	default:
		return fmt.Errorf("%w: binlog column type %d", ErrUnsupportedType, typ)
	}
	return nil
}

// complete takes from information_schema what the binlog lacks: that a
// TINYINT is TINYINT(1), a boolean; the default value. It is ignored when
// its type is not the binlog's (the table changed since the event).
func (c *column) complete(ic *infoColumn) {
	var fromInfo column
	if err := fromInfo.fromInfo(ic); err != nil {
		return
	}
	same := fromInfo.kind == c.kind || (fromInfo.kind == kindBoolean && c.kind == kindInteger && ic.dataType == "tinyint")
	if !same || (c.kind == kindInteger && fromInfo.intType != c.intType && fromInfo.kind != kindBoolean) {
		return
	}
	c.kind = fromInfo.kind
	c.def = fromInfo.def
	if len(c.labels) == 0 {
		c.labels = fromInfo.labels
	}
}

// findInfo returns the information_schema column called name, or nil.
func findInfo(info []infoColumn, name string) *infoColumn {
	for i := range info {
		if info[i].name == name {
			return &info[i]
		}
	}
	return nil
}

// tableOfInfo derives a table's columns from information_schema alone, for
// the snapshot.
func tableOfInfo(name string, info []infoColumn) (*Table, error) {
	t := &Table{name: name, cols: make([]column, len(info))}
	for i := range info {
		if err := t.cols[i].fromInfo(&info[i]); err != nil {
			return nil, fmt.Errorf("%s column %s: %w", name, info[i].name, err)
		}
		if info[i].keySeq > 0 {
			t.pk = append(t.pk, i)
		}
	}
	slices.SortFunc(t.pk, func(a, b int) int { return info[a].keySeq - info[b].keySeq })
	return t, nil
}

// fromInfo derives a column from information_schema.
func (c *column) fromInfo(ic *infoColumn) error {
	c.name, c.optional = ic.name, ic.nullable
	c.unsigned = strings.Contains(ic.columnType, "unsigned")
	switch ic.dataType {
	case "tinyint":
		c.kind, c.intType = kindInteger, "int16"
		if strings.HasPrefix(ic.columnType, "tinyint(1)") && !c.unsigned {
			c.kind = kindBoolean
		}
	case "smallint":
		c.kind, c.intType = kindInteger, "int16"
		if c.unsigned {
			c.intType = "int32"
		}
	case "mediumint":
		c.kind, c.intType = kindInteger, "int32"
	case "int", "integer":
		c.kind, c.intType = kindInteger, "int32"
		if c.unsigned {
			c.intType = "int64"
		}
	case "bigint":
		c.kind, c.intType = kindInteger, "int64"
	case "bit":
		c.kind, c.size = kindBits, int(ic.numericPrecision)
		if c.size == 1 {
			c.kind = kindBoolean
		}
	case "float":
		c.kind = kindFloat
	case "double", "real":
		c.kind = kindDouble
	case "decimal", "numeric":
		c.kind = kindDecimal
	case "date":
		c.kind = kindDate
	case "time":
		c.kind, c.size = kindTime, int(ic.datetimePrecision)
	case "datetime":
		c.kind, c.size = kindDatetime, int(ic.datetimePrecision)
		if c.size > 3 {
			c.kind = kindDatetimeMicro
		}
	case "timestamp":
		c.kind, c.size = kindTimestamp, int(ic.datetimePrecision)
	case "year":
		c.kind = kindYear
	case "enum":
		c.kind, c.labels = kindEnum, parseLabels(ic.columnType)
	case "set":
		c.kind, c.labels = kindSet, parseLabels(ic.columnType)
	case "json":
		c.kind = kindJSON
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext":
		c.kind = kindText
	case "binary":
		c.kind, c.size = kindBinary, int(ic.octetLength)
	case "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "geometry", "point", "linestring", "polygon",
		"multipoint", "multilinestring", "multipolygon", "geometrycollection":
		c.kind = kindBinary
	default:
		return fmt.Errorf("%w: %s", ErrUnsupportedType, ic.columnType)
	}
	c.def = defaultOf(c, ic)
	return nil
}
