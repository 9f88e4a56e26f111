package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/segmentio/kafka-go"
)

// The transactional outbox (SPEC §5): inserts into the outbox table are
// routed as Debezium's Outbox Event Router (io.debezium.transforms.outbox.
// EventRouter) routes them when configured with
//
//	route.by.field=aggregatetype               (the default)
//	route.topic.replacement=<Outbox.Topic>     (<prefix>.outbox.${routedByValue})
//	table.field.event.key=aggregateid          (the default)
//	table.field.event.payload=payload          (the default)
//	table.fields.additional.placement=type:header:type
//	table.expand.json.payload=<Outbox.ExpandJSON>
//
// and Kafka Connect's JsonConverter (schemas.enable=false) for key and
// value, and its default SimpleHeaderConverter for headers:
//
//   - topic: Topic with ${routedByValue} replaced by the row's aggregatetype;
//   - key: aggregateid as JSON, so a VARCHAR id 42 is the JSON string "42";
//   - value: the payload column as a JSON string (its text, quoted), as
//     JsonConverter writes a string field; with ExpandJSON a payload holding
//     a JSON object is written as that object, its null members left out as
//     Debezium's expansion leaves them out. A NULL payload is a null value;
//   - headers: id and type, as their text.
//
// Only inserts are routed: deletes (the worker deletes every row in the
// transaction that inserted it) are ignored, updates too, with a warning,
// as the router does; outbox rows never go out as row changes. The snapshot
// does not read the outbox table: it holds no rows once its transactions
// commit, and an event must not be sent again at every snapshot. Messages
// join the transaction's other messages, so they share its at-least-once
// delivery: the checkpoint past a transaction is saved only once Kafka
// acknowledged every message of it, and a crash before that sends them
// again, the same id with the same payload.

// Outbox says which table is the transactional outbox and how its events
// are routed.
type Outbox struct {
	// Table is the outbox table in Config.Database; "" routes no outbox.
	Table string
	// Topic is the route in Debezium's route.topic.replacement form:
	// ${routedByValue} stands for the row's aggregatetype.
	Topic string
	// ExpandJSON writes a JSON object payload as JSON rather than as a
	// string (Debezium's table.expand.json.payload).
	ExpandJSON bool
	// Ensure creates a topic before its first event is written (nil: the
	// topics exist). It is called once per topic per connection.
	Ensure func(ctx context.Context, topic string) error
}

// routedBy is the placeholder for the aggregate type in Outbox.Topic.
const routedBy = "${routedByValue}"

// TopicOf is the topic of aggregate type aggregate.
func (o Outbox) TopicOf(aggregate string) string {
	return strings.ReplaceAll(o.Topic, routedBy, aggregate)
}

// ValidTopic reports whether Kafka takes name as a topic name: 1 to 249 of
// [a-zA-Z0-9._-], and neither "." nor "..".
func ValidTopic(name string) error {
	if name == "" || len(name) > 249 || name == "." || name == ".." {
		return fmt.Errorf("%w: %q", ErrTopicName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q has %q; Kafka takes letters, digits, '.', '_' and '-'", ErrTopicName, name, c)
		}
	}
	return nil
}

// outboxRows appends the routed messages of the inserts of a rows event of
// the outbox table.
func (d *Decoder) outboxRows(ctx context.Context, msgs []kafka.Message, h *replication.EventHeader, e *replication.RowsEvent,
	t *Table) ([]kafka.Message, error) {
	o := d.outbox
	switch h.EventType {
	case replication.WRITE_ROWS_EVENTv0, replication.WRITE_ROWS_EVENTv1, replication.WRITE_ROWS_EVENTv2,
		replication.MARIADB_WRITE_ROWS_COMPRESSED_EVENT_V1:
	case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2,
		replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1, replication.PARTIAL_UPDATE_ROWS_EVENT:
		d.log.Warn("update of outbox rows ignored: only inserts are routed", "table", o.Table, "rows", len(e.Rows)/2,
			"file", d.file, "pos", h.LogPos-h.EventSize)
		return msgs, nil
	default: // deletes: the worker empties the outbox in every transaction
		return msgs, nil
	}
	for i, row := range e.Rows {
		m, err := o.message(t, row)
		if err != nil {
			// A row no topic can take (no aggregatetype, or one Kafka
			// refuses in a topic name) would stop the shard's capture for
			// good; it is logged with its position instead.
			d.log.Error("outbox row not routed", "err", err, "id", t.value(row, "id"), "file", d.file,
				"pos", h.LogPos-h.EventSize, "row", i)
			continue
		}
		if err := d.ensureTopic(ctx, m.Topic); err != nil {
			return msgs, err
		}
		msgs = append(msgs, m)
		d.enc.metrics.encoded(len(m.Value))
	}
	d.enc.metrics.read(o.Table, OpCreate, len(e.Rows))
	d.enc.metrics.lag(int64(h.Timestamp))
	return msgs, nil
}

// ensureTopic creates topic the first time this connection routes to it.
func (d *Decoder) ensureTopic(ctx context.Context, topic string) error {
	if d.outbox.Ensure == nil || d.outboxTopics[topic] {
		return nil
	}
	if err := d.outbox.Ensure(ctx, topic); err != nil {
		return fmt.Errorf("outbox topic %s: %w", topic, err)
	}
	if d.outboxTopics == nil {
		d.outboxTopics = map[string]bool{}
	}
	d.outboxTopics[topic] = true
	return nil
}

// message is the Kafka message of one outbox row.
func (o Outbox) message(cols *Table, row []any) (kafka.Message, error) {
	agg := cols.value(row, "aggregatetype")
	if agg == nil {
		return kafka.Message{}, fmt.Errorf("no aggregatetype to route by")
	}
	topic := o.TopicOf(headerText(agg))
	if err := ValidTopic(topic); err != nil {
		return kafka.Message{}, fmt.Errorf("aggregatetype %q: %w", headerText(agg), err)
	}
	m := kafka.Message{Topic: topic}
	if k := cols.value(row, "aggregateid"); k != nil {
		m.Key = appendConnectJSON(nil, k)
	}
	switch p := cols.value(row, "payload").(type) {
	case nil:
	case string:
		if o.ExpandJSON && strings.HasPrefix(p, "{") {
			if v, err := expandJSON(p); err == nil {
				m.Value = v
				break
			}
			// Not JSON after all: sent as the string, as Debezium does.
		}
		m.Value = appendJacksonString(nil, p)
	default:
		m.Value = appendConnectJSON(nil, p)
	}
	for _, name := range []string{"id", "type"} {
		h := kafka.Header{Key: name}
		if v := cols.value(row, name); v != nil {
			h.Value = []byte(headerText(v))
		}
		m.Headers = append(m.Headers, h)
	}
	return m, nil
}

// headerText renders a column value as SimpleHeaderConverter writes it: a
// string as itself, a number or boolean as its text.
func headerText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return string(appendValue(nil, v))
}

// appendConnectJSON appends a column value as JsonConverter writes it
// without schema: strings JSON-quoted as Jackson quotes them, numbers and
// booleans as themselves.
func appendConnectJSON(b []byte, v any) []byte {
	if s, ok := v.(string); ok {
		return appendJacksonString(b, s)
	}
	return appendValue(b, v)
}

// appendJacksonString appends s as a JSON string the way Jackson (and so
// JsonConverter) escapes it: quote, backslash and control characters only,
// the short forms where JSON has them, \u00XX (upper-case hex) otherwise;
// everything else, '<', '>', '&' and non-ASCII included, as it is. Invalid
// UTF-8 becomes U+FFFD, as decoding the column to a Java string does.
func appendJacksonString(b []byte, s string) []byte {
	const hexUpper = "0123456789ABCDEF"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, "\uFFFD"...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexUpper[c>>4], hexUpper[c&0xf])
		default:
			b = append(b, c)
		}
		i++
	}
	return append(b, '"')
}

// expandJSON rewrites a JSON object payload as Debezium's
// table.expand.json.payload and JsonConverter write it: compact, members
// in their order, null members left out, strings escaped as Jackson
// escapes them, numbers as written.
func expandJSON(s string) ([]byte, error) {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var b bytes.Buffer
	if err := expandValue(d, &b); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("payload: data after the JSON object")
	}
	return b.Bytes(), nil
}

// expandValue copies the next JSON value from d to b.
func expandValue(d *json.Decoder, b *bytes.Buffer) error {
	tok, err := d.Token()
	if err != nil {
		return err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			return expandObject(d, b)
		case '[':
			b.WriteByte('[')
			for n := 0; d.More(); n++ {
				if n > 0 {
					b.WriteByte(',')
				}
				if err := expandValue(d, b); err != nil {
					return err
				}
			}
			if _, err := d.Token(); err != nil {
				return err
			}
			b.WriteByte(']')
		}
	case string:
		b.Write(appendJacksonString(nil, v))
	case json.Number:
		b.WriteString(v.String())
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case nil:
		b.WriteString("null")
	}
	return nil
}

// expandObject copies the rest of an object, its null members left out.
func expandObject(d *json.Decoder, b *bytes.Buffer) error {
	b.WriteByte('{')
	n := 0
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		var member bytes.Buffer
		if err := expandValue(d, &member); err != nil {
			return err
		}
		if member.String() == "null" {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		b.Write(appendJacksonString(nil, name))
		b.WriteByte(':')
		b.Write(member.Bytes())
	}
	if _, err := d.Token(); err != nil {
		return err
	}
	b.WriteByte('}')
	return nil
}
