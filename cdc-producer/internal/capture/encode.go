package capture

// The encoder: one path from a row change (of the binlog or of the
// snapshot) to its Kafka messages, the same Debezium envelope either way,
// written by hand in column order straight into large shared buffers (the
// producer's hottest path: encoding/json on maps is several times slower
// and allocates per value).

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/cdc"
)

// Source is the envelope's source block, shared with the consumers.
type Source = cdc.Source

// Version is the producer's version in source.version.
const Version = "shopledger-cdc-2"

// Operations.
const (
	OpCreate = cdc.OpCreate
	OpUpdate = cdc.OpUpdate
	OpDelete = cdc.OpDelete
	OpRead   = cdc.OpRead
)

// Snapshot markers of source.snapshot (Debezium's SnapshotRecord).
const (
	SnapshotFirst             = "first"
	SnapshotFirstInCollection = "first_in_data_collection"
	SnapshotTrue              = "true"
	SnapshotLastInCollection  = "last_in_data_collection"
	SnapshotLast              = "last"
	SnapshotFalse             = "false"
)

// Encoder turns row changes into the Kafka messages the producer
// publishes: the change event on the topic of its table, keyed as
// configured, and the tombstone after a delete; also heartbeats and
// transaction metadata. It is used by one goroutine at a time.
type Encoder struct {
	prefix     string // topic prefix, also source.name
	db         string
	shard      int
	connector  string // source.connector: mysql or mariadb
	keys       map[string]Key
	keyIDs     map[string]string // table -> its configured key columns, joined
	withSchema bool              // values in json-with-schema
	keySchemas bool              // keys in json-with-schema
	tombstones bool
	metrics    *Metrics // nil counts nothing
	buf        arena
	// src and times are the last source block and envelope times
	// written: the rows of one binlog event share them but for the row
	// number, and writing them for each row was a third of the encoding.
	src   sourceCache
	times timesCache
}

// sourceCache is a source block written: for a source of key (but its
// row number), the bytes before the row number and after it.
type sourceCache struct {
	key           sourceKey
	before, after []byte
}

// sourceKey is what the source block holds of a table's Source but its
// row number. It keeps copies of the strings, nothing loaded from a
// Change: else the compiler would move each Change's transaction order to
// the heap, an allocation per rows event.
type sourceKey struct {
	tsMs, epoch, thread   int64
	table, snapshot, gtid string
	file                  string
	serverID, pos         uint32
	hasThread             bool
}

// is reports whether k is the key of t's source s.
func (k *sourceKey) is(t *Table, s *Source) bool {
	return k.table == t.name && k.tsMs == s.TsMs && k.epoch == s.Epoch && k.snapshot == s.Snapshot && k.gtid == s.GTID &&
		k.file == s.File && k.serverID == s.ServerID && k.pos == s.Pos && k.hasThread == (s.Thread != nil) &&
		(s.Thread == nil || k.thread == *s.Thread)
}

func keyOf(t *Table, s *Source) sourceKey {
	k := sourceKey{table: strings.Clone(t.name), tsMs: s.TsMs, epoch: s.Epoch, snapshot: strings.Clone(s.Snapshot),
		gtid: strings.Clone(s.GTID), file: strings.Clone(s.File), serverID: s.ServerID, pos: s.Pos}
	if s.Thread != nil {
		k.thread, k.hasThread = *s.Thread, true
	}
	return k
}

// timesCache is the envelope's ts_ms, ts_us and ts_ns written for ns.
type timesCache struct {
	ns int64
	b  []byte
}

// NewEncoder returns the encoder of cfg's capture of a server of flavor
// (mysql or mariadb); m counts the bytes it encodes (nil: none).
func NewEncoder(cfg Config, flavor string, m *Metrics) *Encoder {
	e := &Encoder{prefix: cfg.TopicPrefix, db: cfg.Database, shard: cfg.Shard, connector: flavor, keys: cfg.Tables,
		keyIDs: map[string]string{}, withSchema: cfg.ValueFormat == FormatJSONWithSchema,
		keySchemas: cfg.KeyFormat == FormatJSONWithSchema, tombstones: cfg.Tombstones, metrics: m}
	if e.connector == "" {
		e.connector = "mysql"
	}
	for t, k := range cfg.Tables {
		e.keyIDs[t] = strings.Join(k.Columns, ",")
	}
	return e
}

// captures reports whether table of schema db is captured.
func (e *Encoder) captures(db, table string) bool {
	_, ok := e.keys[table]
	return ok && db == e.db
}

// Change is one row change: the row images of one row, in the table's
// column order (nil when absent: before of an insert, after of a delete),
// and where it comes from. The encoder fills the source block's constant
// fields (version, connector, name, db, table, shard).
type Change struct {
	Table         *Table
	Op            string // OpCreate, OpUpdate, OpDelete or OpRead
	Before, After []any
	Source        Source
	// Tx places the change in its transaction (the envelope's
	// transaction block, provide.transaction.metadata); nil writes null.
	Tx *TxOrder
}

// TxOrder is a change's place in its transaction.
type TxOrder struct {
	ID              string // the transaction's GTID (or file:pos without GTIDs)
	TotalOrder      int64  // among all the transaction's changes, from 1
	CollectionOrder int64  // among its changes of the same table, from 1
}

// Append appends the messages of ch to msgs; now is the envelope's ts_ms.
func (e *Encoder) Append(msgs []kafka.Message, ch *Change, now time.Time) []kafka.Message {
	t := ch.Table
	row := ch.After
	if row == nil {
		row = ch.Before
	}
	if t.topic == "" {
		t.topic = topicOf(e.prefix, t.name)
	}
	topic := t.topic
	key := e.key(t, row)

	v := e.buf.start(1024 + 96*len(t.cols))
	if e.withSchema {
		v = append(v, e.valueSchema(t)...)
	}
	v = append(v, `{"before":`...)
	v = t.appendRow(v, ch.Before)
	v = append(v, `,"after":`...)
	v = t.appendRow(v, ch.After)
	v = append(v, `,"source":`...)
	v = e.appendCachedSource(v, t, &ch.Source)
	v = append(v, `,"transaction":`...)
	if tx := ch.Tx; tx != nil {
		v = append(v, `{"id":`...)
		v = appendString(v, tx.ID)
		v = append(v, `,"total_order":`...)
		v = strconv.AppendInt(v, tx.TotalOrder, 10)
		v = append(v, `,"data_collection_order":`...)
		v = strconv.AppendInt(v, tx.CollectionOrder, 10)
		v = append(v, '}')
	} else {
		v = append(v, "null"...)
	}
	v = append(v, `,"op":"`...)
	v = append(v, ch.Op...)
	v = append(v, '"')
	if ns := now.UnixNano(); ns != e.times.ns || e.times.b == nil {
		e.times = timesCache{ns: ns, b: appendTimes(e.times.b[:0], now)}
	}
	v = append(v, e.times.b...)
	v = append(v, '}')
	if e.withSchema {
		v = append(v, '}')
	}
	value := e.buf.done(v)
	e.metrics.encoded(len(value))
	msgs = append(msgs, kafka.Message{Topic: topic, Key: key, Value: value})
	if ch.Op == OpDelete && e.tombstones {
		// Kafka's log compaction drops the key's older messages once it
		// sees this (a null value).
		msgs = append(msgs, kafka.Message{Topic: topic, Key: key})
	}
	return msgs
}

// appendTimes appends the envelope's ts_ms, ts_us and ts_ns of now.
func appendTimes(b []byte, now time.Time) []byte {
	ns := now.UnixNano()
	b = append(b, `,"ts_ms":`...)
	b = strconv.AppendInt(b, ns/1e6, 10)
	b = append(b, `,"ts_us":`...)
	b = strconv.AppendInt(b, ns/1e3, 10)
	b = append(b, `,"ts_ns":`...)
	return strconv.AppendInt(b, ns, 10)
}

// intOf reads an integer column value from either input: go-mysql's
// integer or the snapshot's text.
func intOf(v any) (int64, bool) {
	switch x := v.(type) {
	case []byte:
		n, err := strconv.ParseInt(str(x), 10, 64)
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	}
	return toInt(v)
}

// topicOf is the topic of table.
func topicOf(prefix, table string) string { return prefix + "." + table }

// appendRow appends a row image as a JSON object, or null.
func (t *Table) appendRow(b []byte, values []any) []byte {
	if values == nil {
		return append(b, "null"...)
	}
	b = append(b, '{')
	for i := range t.cols {
		if i > 0 {
			b = append(b, ',')
		}
		c := &t.cols[i]
		b = append(b, t.field(i)...)
		var v any
		if i < len(values) {
			v = values[i]
		}
		b = appendColumn(b, c, v)
	}
	return append(b, '}')
}

// appendCachedSource appends the source block as appendSource does, from
// the cache when only the row number differs from the last one.
func (e *Encoder) appendCachedSource(b []byte, t *Table, s *Source) []byte {
	c := &e.src
	if c.before == nil || !c.key.is(t, s) {
		row := s.Row
		s.Row = -1 // a mark to cut at: no row number is negative
		full := e.appendSource(nil, t, s)
		s.Row = row
		i := bytes.Index(full, []byte(`,"row":-1,`)) + len(`,"row":`)
		c.key = keyOf(t, s)
		c.before = append(c.before[:0], full[:i]...)
		c.after = append(c.after[:0], full[i+2:]...)
	}
	b = append(b, c.before...)
	b = strconv.AppendInt(b, int64(s.Row), 10)
	return append(b, c.after...)
}

// appendSource appends the source block: Debezium's fields in its order,
// then our shard and epoch.
func (e *Encoder) appendSource(b []byte, t *Table, s *Source) []byte {
	b = append(b, `{"version":"`+Version+`","connector":"`...)
	b = append(b, e.connector...)
	b = append(b, `","name":`...)
	b = appendString(b, e.prefix)
	b = append(b, `,"ts_ms":`...)
	b = strconv.AppendInt(b, s.TsMs, 10)
	b = append(b, `,"snapshot":`...)
	b = appendString(b, s.Snapshot)
	b = append(b, `,"db":`...)
	b = appendString(b, e.db)
	b = append(b, `,"sequence":null,"ts_us":`...)
	b = strconv.AppendInt(b, s.TsMs*1000, 10)
	b = append(b, `,"ts_ns":`...)
	b = strconv.AppendInt(b, s.TsMs*1_000_000, 10)
	b = append(b, `,"table":`...)
	b = appendString(b, t.name)
	b = append(b, `,"server_id":`...)
	b = strconv.AppendUint(b, uint64(s.ServerID), 10)
	b = append(b, `,"gtid":`...)
	if s.GTID != "" {
		b = appendString(b, s.GTID)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"file":`...)
	b = appendString(b, s.File)
	b = append(b, `,"pos":`...)
	b = strconv.AppendUint(b, uint64(s.Pos), 10)
	b = append(b, `,"row":`...)
	b = strconv.AppendInt(b, int64(s.Row), 10)
	b = append(b, `,"thread":`...)
	if s.Thread != nil {
		b = strconv.AppendInt(b, *s.Thread, 10)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"query":null,"shard":`...)
	b = strconv.AppendInt(b, int64(e.shard), 10)
	b = append(b, `,"epoch":`...)
	b = strconv.AppendInt(b, s.Epoch, 10)
	return append(b, '}')
}

// key returns the message key of a row of t: a JSON object of its key
// columns (configured, else the primary key), or nil when t has none.
func (e *Encoder) key(t *Table, row []any) []byte {
	ks := e.keyShape(t, row)
	if ks.none {
		return nil
	}
	b := e.buf.start(64 + 32*len(ks.idx))
	if e.keySchemas {
		if ks.schema == nil {
			ks.schema = e.keySchema(t, ks.idx)
		}
		b = append(b, ks.schema...)
	}
	b = append(b, '{')
	for n, i := range ks.idx {
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, t.field(i)...)
		var v any
		if i < len(row) {
			v = row[i]
		}
		b = appendColumn(b, &t.cols[i], v)
	}
	b = append(b, '}')
	if e.keySchemas {
		b = append(b, '}')
	}
	return e.buf.done(b)
}

// keyShape returns the key columns of a row of t: the configured ones (in
// the table's column order, as Debezium's message.key.columns), the SPEC §2
// ordering key of an events row, or the primary key.
func (e *Encoder) keyShape(t *Table, row []any) *keyShape {
	k := e.keys[t.name]
	id := e.keyIDs[t.name]
	if k.Ordering {
		id = "shop_id"
		if i := t.index("event_type"); i >= 0 && i < len(row) {
			if n, ok := intOf(row[i]); ok && (n == 1 || n == 3) {
				id = "order_id"
			}
		}
	}
	if ks, ok := t.schemas.keys[id]; ok {
		return ks
	}
	ks := &keyShape{}
	switch {
	case id == "":
		ks.idx = t.pk
	default:
		names := strings.Split(id, ",")
		for i := range t.cols {
			for _, n := range names {
				if t.cols[i].name == n {
					ks.idx = append(ks.idx, i)
				}
			}
		}
	}
	ks.none = len(ks.idx) == 0
	if t.schemas.keys == nil {
		t.schemas.keys = map[string]*keyShape{}
	}
	t.schemas.keys[id] = ks
	return ks
}
