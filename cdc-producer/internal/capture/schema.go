package capture

// Kafka Connect schemas of the json-with-schema format: what JsonConverter
// writes with schemas.enable=true for Debezium's records (the envelope of a
// table, its key, heartbeats, transaction metadata), built from the
// table's columns and cached per table.

import (
	"strconv"
	"strings"
)

// Format is a message format.
type Format string

// The formats of keys and values.
const (
	// FormatJSON is the JSON alone, as JsonConverter writes with
	// schemas.enable=false.
	FormatJSON Format = "json"
	// FormatJSONWithSchema is {"schema":..,"payload":..}, as JsonConverter
	// writes with schemas.enable=true.
	FormatJSONWithSchema Format = "json-with-schema"
)

// tableSchemas are a table's encoded schemas, each the start of a message
// up to its payload ({"schema":...,"payload":), and its key shapes.
type tableSchemas struct {
	value []byte
	keys  map[string]*keyShape // by Encoder.keyID
}

// keyShape is a key's columns and, once needed, its schema.
type keyShape struct {
	idx    []int
	schema []byte
	none   bool // no key: no primary key and none configured
}

// connectType is the Kafka Connect type of a column.
func (c *column) connectType() string {
	switch c.kind {
	case kindInteger:
		return c.intType
	case kindBoolean:
		return "boolean"
	case kindBits, kindBinary:
		return "bytes"
	case kindFloat:
		return "float"
	case kindDouble:
		return "double"
	case kindDate, kindYear:
		return "int32"
	case kindTime, kindDatetime, kindDatetimeMicro:
		return "int64"
	}
	return "string"
}

// semanticName is Debezium's name of the column's logical type, or "".
func (c *column) semanticName() string {
	switch c.kind {
	case kindBits:
		return "io.debezium.data.Bits"
	case kindDate:
		return "io.debezium.time.Date"
	case kindTime:
		return "io.debezium.time.MicroTime"
	case kindDatetime:
		return "io.debezium.time.Timestamp"
	case kindDatetimeMicro:
		return "io.debezium.time.MicroTimestamp"
	case kindTimestamp:
		return "io.debezium.time.ZonedTimestamp"
	case kindYear:
		return "io.debezium.time.Year"
	case kindEnum:
		return "io.debezium.data.Enum"
	case kindSet:
		return "io.debezium.data.EnumSet"
	case kindJSON:
		return "io.debezium.data.Json"
	}
	return ""
}

// appendFieldSchema appends the schema of c as a struct field.
func appendFieldSchema(b []byte, c *column) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, c.connectType()...)
	b = append(b, `","optional":`...)
	b = strconv.AppendBool(b, c.optional)
	if name := c.semanticName(); name != "" {
		b = append(b, `,"name":"`...)
		b = append(b, name...)
		b = append(b, `","version":1`...)
	}
	switch c.kind {
	case kindBits:
		b = append(b, `,"parameters":{"length":"`...)
		b = strconv.AppendInt(b, int64(c.size), 10)
		b = append(b, `"}`...)
	case kindEnum, kindSet:
		b = append(b, `,"parameters":{"allowed":`...)
		b = appendString(b, strings.Join(c.labels, ","))
		b = append(b, '}')
	}
	if c.def != nil {
		b = append(b, `,"default":`...)
		b = append(b, c.def...)
	}
	b = append(b, `,"field":`...)
	b = appendString(b, c.name)
	return append(b, '}')
}

// appendRowSchema appends the schema of a row image, the struct field
// called field.
func appendRowSchema(b []byte, t *Table, ns, field string) []byte {
	b = append(b, `{"type":"struct","fields":[`...)
	for i := range t.cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendFieldSchema(b, &t.cols[i])
	}
	b = append(b, `],"optional":true,"name":`...)
	b = appendString(b, ns+".Value")
	b = append(b, `,"field":"`...)
	b = append(b, field...)
	return append(b, `"}`...)
}

// sourceSchema is the schema of the source block after its connector's
// name: Debezium's fields, then our shard and epoch.
const sourceSchema = `{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},` +
	`{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},` +
	`{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum",` +
	`"version":1,"parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},` +
	`"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},` +
	`{"type":"string","optional":true,"field":"sequence"},{"type":"int64","optional":true,"field":"ts_us"},` +
	`{"type":"int64","optional":true,"field":"ts_ns"},{"type":"string","optional":true,"field":"table"},` +
	`{"type":"int64","optional":false,"field":"server_id"},{"type":"string","optional":true,"field":"gtid"},` +
	`{"type":"string","optional":false,"field":"file"},{"type":"int64","optional":false,"field":"pos"},` +
	`{"type":"int32","optional":false,"field":"row"},{"type":"int64","optional":true,"field":"thread"},` +
	`{"type":"string","optional":true,"field":"query"},{"type":"int32","optional":false,"field":"shard"},` +
	`{"type":"int64","optional":false,"field":"epoch"}],"optional":false,"name":"io.debezium.connector.`

// envelopeTail is the schema of the envelope's fields after source.
const envelopeTail = `{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},` +
	`{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],` +
	`"optional":true,"name":"event.block","version":1,"field":"transaction"},{"type":"string","optional":false,"field":"op"},` +
	`{"type":"int64","optional":true,"field":"ts_ms"},{"type":"int64","optional":true,"field":"ts_us"},` +
	`{"type":"int64","optional":true,"field":"ts_ns"}]`

// valueSchema returns the start of a json-with-schema value of t, up to
// its payload.
func (e *Encoder) valueSchema(t *Table) []byte {
	if t.schemas.value != nil {
		return t.schemas.value
	}
	ns := e.prefix + "." + e.db + "." + t.name
	b := make([]byte, 0, 1024+300*len(t.cols))
	b = append(b, `{"schema":{"type":"struct","fields":[`...)
	b = appendRowSchema(b, t, ns, "before")
	b = append(b, ',')
	b = appendRowSchema(b, t, ns, "after")
	b = append(b, ',')
	b = append(b, sourceSchema...)
	b = append(b, e.connector...)
	b = append(b, `.Source","version":1,"field":"source"},`...)
	b = append(b, envelopeTail...)
	b = append(b, `,"optional":false,"name":`...)
	b = appendString(b, ns+".Envelope")
	b = append(b, `,"version":2},"payload":`...)
	t.schemas.value = b
	return b
}

// keySchema returns the start of a json-with-schema key of t made of the
// columns idx, up to its payload.
func (e *Encoder) keySchema(t *Table, idx []int) []byte {
	b := append([]byte(nil), `{"schema":{"type":"struct","fields":[`...)
	for n, i := range idx {
		if n > 0 {
			b = append(b, ',')
		}
		b = appendFieldSchema(b, &t.cols[i])
	}
	b = append(b, `],"optional":false,"name":`...)
	b = appendString(b, e.prefix+"."+e.db+"."+t.name+".Key")
	return append(b, `},"payload":`...)
}

// The schemas of heartbeats and transaction metadata, as Debezium's.
const (
	heartbeatKeySchema = `{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"serverName"}],` +
		`"optional":false,"name":"io.debezium.connector.common.ServerNameKey","version":1},"payload":`
	heartbeatValueSchema = `{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"ts_ms"}],` +
		`"optional":false,"name":"io.debezium.connector.common.Heartbeat","version":1},"payload":`
	transactionKeySchema = `{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"}],` +
		`"optional":false,"name":"io.debezium.connector.common.TransactionMetadataKey","version":1},"payload":`
	transactionValueSchema = `{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"status"},` +
		`{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":true,"field":"event_count"},` +
		`{"type":"array","items":{"type":"struct","fields":[{"type":"string","optional":false,"field":"data_collection"},` +
		`{"type":"int64","optional":false,"field":"event_count"}],"optional":true,"name":"event.collection","version":1},` +
		`"optional":true,"field":"data_collections"},{"type":"int64","optional":false,"field":"ts_ms"}],` +
		`"optional":false,"name":"io.debezium.connector.common.TransactionMetadataValue","version":1},"payload":`
)
