package capture

// The encoder: one path from a row change (of the binlog or of the
// snapshot) to its Kafka message, written by hand into one buffer in column
// order; it is the producer's hottest path, and encoding/json on maps is
// several times slower.

import (
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/cdc"
)

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

// Encoder turns row changes into the Kafka messages the producer
// publishes: the topic of the change's table, its key, and its Debezium
// envelope. It is safe for one goroutine at a time.
type Encoder struct {
	prefix  string // topic prefix, also source.name
	db      string
	shard   int
	keys    map[string]Key
	metrics *Metrics // nil counts nothing
}

// NewEncoder returns the encoder of cfg's capture; m counts the bytes it
// encodes (nil: none).
func NewEncoder(cfg Config, m *Metrics) *Encoder {
	return &Encoder{prefix: cfg.TopicPrefix, db: cfg.Database, shard: cfg.Shard, keys: cfg.Tables, metrics: m}
}

// captures reports whether table of schema db is captured.
func (e *Encoder) captures(db, table string) bool {
	_, ok := e.keys[table]
	return ok && db == e.db
}

// Change is one row change: the row images of one row, in the table's
// column order (nil when absent: before of an insert, after of a delete),
// and where it comes from. The encoder fills the source block's constant
// fields (version, name, db, table, shard).
type Change struct {
	Table         *Table
	Op            string // OpCreate, OpUpdate, OpDelete or OpRead
	Before, After []any
	Source        Source
}

// Append appends the messages of ch to msgs; now is the envelope's ts_ms.
func (e *Encoder) Append(msgs []kafka.Message, ch *Change, now time.Time) []kafka.Message {
	t := ch.Table
	src := ch.Source
	src.Version, src.Name, src.DB, src.Table, src.Shard = Version, e.prefix, e.db, t.name, e.shard
	v := make([]byte, 0, 256+64*len(t.names))
	v = append(v, `{"before":`...)
	v = t.appendRow(v, ch.Before)
	v = append(v, `,"after":`...)
	v = t.appendRow(v, ch.After)
	v = append(v, `,"source":`...)
	v = appendSource(v, &src)
	v = append(v, `,"op":"`...)
	v = append(v, ch.Op...)
	v = append(v, `","ts_ms":`...)
	v = strconv.AppendInt(v, now.UnixMilli(), 10)
	v = append(v, '}')
	row := ch.After
	if row == nil {
		row = ch.Before
	}
	e.metrics.encoded(len(v))
	return append(msgs, kafka.Message{Topic: topic(e.prefix, t.name), Key: t.appendKey(nil, e.keys[t.name], row), Value: v})
}

// topic is the topic of table.
func topic(prefix, table string) string { return prefix + "." + table }

// appendRow appends a row image as a JSON object, or null.
func (c *Table) appendRow(b []byte, values []any) []byte {
	if values == nil {
		return append(b, "null"...)
	}
	b = append(b, '{')
	for i, name := range c.names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, name)
		b = append(b, ':')
		var v any
		if i < len(values) {
			v = values[i]
			if v != nil {
				v = c.conv[i](v)
			}
		}
		b = appendValue(b, v)
	}
	return append(b, '}')
}

// appendKey appends the message key of a row image: a JSON object of the
// table's key columns.
func (c *Table) appendKey(b []byte, k Key, row []any) []byte {
	names := k.Columns
	if k.Ordering {
		names = orderingKey(c.value(row, "event_type"))
	}
	b = append(b, '{')
	for i, name := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, name)
		b = append(b, ':')
		b = appendValue(b, c.value(row, name))
	}
	return append(b, '}')
}

// value returns the converted value of column name in row, or nil.
func (c *Table) value(row []any, name string) any {
	for i, n := range c.names {
		if n == name && i < len(row) {
			if row[i] == nil {
				return nil
			}
			return c.conv[i](row[i])
		}
	}
	return nil
}

// orderingKey is the SPEC §2 ordering key of an events row: order_id for
// purchases (1) and returns (3), shop_id otherwise.
func orderingKey(eventType any) []string {
	if t := toInt64(eventType); t == 1 || t == 3 {
		return []string{"order_id"}
	}
	return []string{"shop_id"}
}

func toInt64(v any) int64 {
	switch n := v.(type) {
	case int8:
		return int64(n)
	case int16:
		return int64(n)
	case int32:
		return int64(n)
	case int64:
		return n
	case int:
		return int64(n)
	}
	return -1
}

// appendSource appends the source block.
func appendSource(b []byte, s *Source) []byte {
	b = append(b, `{"version":`...)
	b = appendString(b, s.Version)
	b = append(b, `,"connector":"mysql","name":`...)
	b = appendString(b, s.Name)
	b = append(b, `,"ts_ms":`...)
	b = strconv.AppendInt(b, s.TsMs, 10)
	b = append(b, `,"snapshot":`...)
	b = appendString(b, s.Snapshot)
	b = append(b, `,"db":`...)
	b = appendString(b, s.DB)
	b = append(b, `,"table":`...)
	b = appendString(b, s.Table)
	b = append(b, `,"server_id":`...)
	b = strconv.AppendUint(b, uint64(s.ServerID), 10)
	if s.GTID != "" {
		b = append(b, `,"gtid":`...)
		b = appendString(b, s.GTID)
	}
	b = append(b, `,"file":`...)
	b = appendString(b, s.File)
	b = append(b, `,"pos":`...)
	b = strconv.AppendUint(b, uint64(s.Pos), 10)
	b = append(b, `,"row":`...)
	b = strconv.AppendInt(b, int64(s.Row), 10)
	b = append(b, `,"shard":`...)
	b = strconv.AppendInt(b, int64(s.Shard), 10)
	b = append(b, `,"epoch":`...)
	b = strconv.AppendInt(b, s.Epoch, 10)
	return append(b, '}')
}
