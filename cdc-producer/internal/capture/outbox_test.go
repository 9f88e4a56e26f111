package capture

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopledger/shopledger/internal/topics"
)

// outboxMsg is an outbox message as a consumer sees it.
type outboxMsg struct {
	topic       string
	key, value  []byte
	id, typ     string
	headers     int
	valueIsNull bool
}

// consumeOutbox reads every topic of prefix.outbox.* until want messages
// arrived (or fails after 20 s).
func (e *env) consumeOutbox(want int) []outboxMsg {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeRegex(), kgo.ConsumeTopics(`^shop\.outbox\..*`),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	var out []outboxMsg
	deadline := time.Now().Add(20 * time.Second)
	for len(out) < want && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			m := outboxMsg{topic: r.Topic, key: r.Key, value: r.Value, valueIsNull: r.Value == nil, headers: len(r.Headers)}
			for _, h := range r.Headers {
				switch h.Key {
				case "id":
					m.id = string(h.Value)
				case "type":
					m.typ = string(h.Value)
				}
			}
			out = append(out, m)
		})
	}
	if len(out) != want {
		e.t.Fatalf("outbox topics hold %d messages, want %d: %+v", len(out), want, out)
	}
	return out
}

// Outbox inserts are routed as Debezium's Outbox Event Router routes them,
// in the transaction of the rows beside them; the deletes that empty the
// outbox, and updates, are not published; no row topic of the outbox
// exists; a topic of a new aggregate type is created on first use; a row
// no topic can take is left out without stopping the capture.
func TestOutboxRouting(t *testing.T) {
	e := setup(t, SnapshotNever)
	e.cfg.Outbox = Outbox{Table: "outbox", Topic: topics.OutboxReplacement("shop"), Ensure: func(ctx context.Context, topic string) error {
		return topics.Ensure(ctx, e.brokers, topics.Spec{Name: topic, Partitions: 3})
	}}
	stop := e.start()
	defer stop()
	payload := `{"order_id":42,"reason":"<b>\"quoted\"</b> é"}`
	tx, err := e.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"INSERT INTO good (id, name) VALUES (1, 'kettle')",
		`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES
			('7f1d5c2e-0000-5000-8000-000000000001', 'order', '42', 'OrderPlaced', '` + strings.ReplaceAll(payload, `\`, `\\`) + `'),
			('7f1d5c2e-0000-5000-8000-000000000002', 'bad topic!', '1', 'Odd', '{}'),
			('7f1d5c2e-0000-5000-8000-000000000003', 'returns-desk', '43', 'ReturnPending', NULL)`,
		"DELETE FROM outbox",
	} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// An update of an outbox row is not an event either.
	e.exec(`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES ('7f1d5c2e-0000-5000-8000-000000000004', 'order', '44', 'OrderPlaced', '{}')`)
	e.exec("UPDATE outbox SET type = 'OrderRejected'")
	e.exec("DELETE FROM outbox")
	e.exec("INSERT INTO good (id, name) VALUES (2, 'mug')")
	e.consume("shop.good", 2) // the capture is past everything above

	got := e.consumeOutbox(3)
	byID := map[string]outboxMsg{}
	for _, m := range got {
		byID[m.id] = m
	}
	placed := byID["7f1d5c2e-0000-5000-8000-000000000001"]
	var text string
	if err := json.Unmarshal(placed.value, &text); err != nil || text != payload {
		t.Errorf("OrderPlaced value %s = %q (%v), want the payload as a JSON string %q", placed.value, text, err, payload)
	}
	if placed.topic != "shop.outbox.order" || string(placed.key) != `"42"` || placed.typ != "OrderPlaced" || placed.headers != 2 {
		t.Errorf("OrderPlaced = %+v, want topic shop.outbox.order, key \"42\" as JSON, headers id and type", placed)
	}
	if !strings.Contains(string(placed.value), `<b>`) {
		t.Errorf("value %s: '<' escaped, which Jackson does not", placed.value)
	}
	pending := byID["7f1d5c2e-0000-5000-8000-000000000003"]
	if pending.topic != "shop.outbox.returns-desk" || !pending.valueIsNull || string(pending.key) != `"43"` {
		t.Errorf("ReturnPending = %+v, want topic shop.outbox.returns-desk (created on first use), null value for a NULL payload", pending)
	}
	if m, ok := byID["7f1d5c2e-0000-5000-8000-000000000004"]; !ok || m.typ != "OrderPlaced" {
		t.Errorf("the inserted row before its update = %+v, want it routed as inserted", m)
	}
	cl := &kafka.Client{Addr: kafka.TCP(e.brokers...)}
	md, err := cl.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{"shop.outbox"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range md.Topics {
		if tp.Error == nil {
			t.Errorf("topic shop.outbox exists: outbox rows must not go out as row changes")
		}
	}
}

// The message of one outbox row, for the shapes a foreign writer's outbox
// may have: numeric ids, NULLs, JSON expansion on and off.
func TestOutboxMessage(t *testing.T) {
	cols := &Table{name: "outbox"}
	for _, name := range []string{"id", "aggregatetype", "aggregateid", "type", "payload"} {
		cols.cols = append(cols.cols, column{name: name, kind: kindText})
	}
	o := Outbox{Table: "outbox", Topic: "shop.outbox.${routedByValue}"}
	expand := o
	expand.ExpandJSON = true
	nested := `{"a":1,"b":null,"c":{"d":null,"e":[1,null,"x"]},"f":"<\u00e9>","g":1.50}`
	cases := []struct {
		name       string
		o          Outbox
		row        []any
		topic, key string
		value      string // "<nil>" for a null value
		id, typ    string
		err        error
	}{
		{"string payload", o, []any{"u1", "order", "42", "OrderPlaced", `{"x":"a\nb"}`}, "shop.outbox.order", `"42"`, `"{\"x\":\"a\\nb\"}"`, "u1", "OrderPlaced", nil},
		{"expanded payload", expand, []any{"u1", "order", "42", "T", nested}, "shop.outbox.order", `"42"`,
			`{"a":1,"c":{"e":[1,null,"x"]},"f":"<é>","g":1.50}`, "u1", "T", nil},
		{"expansion of a non-object keeps the string", expand, []any{"u1", "order", "42", "T", "[1]"}, "shop.outbox.order", `"42"`, `"[1]"`, "u1", "T", nil},
		{"expansion of broken JSON keeps the string", expand, []any{"u1", "order", "42", "T", "{oops"}, "shop.outbox.order", `"42"`, `"{oops"`, "u1", "T", nil},
		{"numeric key and id", o, []any{int64(9), "shop", int64(7), "T", "{}"}, "shop.outbox.shop", `7`, `"{}"`, "9", "T", nil},
		{"null payload and key", o, []any{"u1", "shop", nil, "T", nil}, "shop.outbox.shop", "", "<nil>", "u1", "T", nil},
		{"control characters", o, []any{"u1", "shop", "a\x01\"", "T", "\x1f"}, "shop.outbox.shop", `"a\u0001\""`, `"\u001F"`, "u1", "T", nil},
		{"no aggregatetype", o, []any{"u1", nil, "1", "T", "{}"}, "", "", "", "", "", nil},
		{"aggregatetype not a topic name", o, []any{"u1", "a b", "1", "T", "{}"}, "", "", "", "", "", ErrTopicName},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := c.o.message(cols, c.row)
			if c.topic == "" {
				if err == nil || c.err != nil && !errors.Is(err, c.err) {
					t.Fatalf("message(%v) = %+v, %v; want an error (%v)", c.row, m, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("message(%v) = %v", c.row, err)
			}
			value := string(m.Value)
			if m.Value == nil {
				value = "<nil>"
			}
			if m.Topic != c.topic || string(m.Key) != c.key || value != c.value {
				t.Errorf("message(%v) = %s %s %s, want %s %s %s", c.row, m.Topic, m.Key, value, c.topic, c.key, c.value)
			}
			if len(m.Headers) != 2 || m.Headers[0].Key != "id" || string(m.Headers[0].Value) != c.id ||
				m.Headers[1].Key != "type" || string(m.Headers[1].Value) != c.typ {
				t.Errorf("headers = %v, want id %s, type %s", m.Headers, c.id, c.typ)
			}
		})
	}
}
