package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/money"
	"github.com/shopledger/shopledger/internal/topics"
)

// The transactional outbox checked end to end: the domain events in the
// outbox topics against the model's outcomes of every line and against
// the rows the workers wrote. Written again here from the README's
// contract (types, aggregates, ids, payload fields), not shared with the
// worker.

// outboxNamespace is the README's namespace of domain event ids: UUIDv5 of
// "<file>:<line>:<type>".
var outboxNamespace = uuid.MustParse("273d9209-e8a4-4d3b-aeba-e7d351cb9ace")

// wantEvent is a domain event the model says a line produces.
type wantEvent struct {
	typ, aggregate, aggregateID string
	src                         event.Source
	shard                       int
	final                       bool // the line's outcome, not its ReturnPending
	pended                      bool // the line is a return that waited for its purchase
}

// outboxEvents returns, by id, the domain events of every line the model
// applied: one for its outcome (none for a duplicate), and ReturnPending
// before it for a return that waited for its purchase.
func (m *model) outboxEvents() map[string]wantEvent {
	out := map[string]wantEvent{}
	add := func(e event.Prepared, sh int, typ string, final bool) {
		w := wantEvent{typ: typ, src: e.Src, shard: sh, final: final, pended: m.pended[e.Src]}
		switch typ {
		case "LineRejected":
			w.aggregate, w.aggregateID = "file", e.Src.File
		case "OrderPlaced", "OrderRejected", "ReturnPending", "OrderRefunded", "ReturnRejected":
			w.aggregate, w.aggregateID = "order", strconv.FormatInt(e.OrderID, 10)
		default:
			w.aggregate, w.aggregateID = "shop", strconv.FormatInt(e.ShopID, 10)
		}
		out[uuid.NewSHA1(outboxNamespace, fmt.Appendf(nil, "%s:%d:%s", e.Src.File, e.Src.Line, typ)).String()] = w
	}
	for src, e := range m.lines {
		o := m.outcome[src]
		if m.pended[src] {
			add(e, o.shard, "ReturnPending", o.status == "pending")
		}
		applied := o.status == "applied"
		var typ string
		switch {
		case o.status == "duplicate" || o.status == "pending":
		case e.Reject != "":
			typ = "LineRejected"
		case e.Type == event.Purchase:
			typ = map[bool]string{true: "OrderPlaced", false: "OrderRejected"}[applied]
		case e.Type == event.Return:
			typ = map[bool]string{true: "OrderRefunded", false: "ReturnRejected"}[applied]
		case e.Type == event.StockChange:
			typ = map[bool]string{true: "StockChanged", false: "StockChangeRejected"}[applied]
		case e.Type == event.PriceChange:
			typ = "PriceChanged"
		case e.Type == event.ShopStatus:
			typ = map[bool]string{true: "ShopOpened", false: "ShopClosed"}[e.Active]
		}
		if typ != "" {
			add(e, o.shard, typ, true)
		}
	}
	return out
}

// outboxMessage is one message of an outbox topic.
type outboxMessage struct {
	topic, key, value, id, typ string
}

// outboxPayload is the part of a payload the checks read.
type outboxPayload struct {
	EventKey     string `json:"event_key"`
	File         string `json:"file"`
	Line         int    `json:"line"`
	Shard        int    `json:"shard"`
	OrderID      *int64 `json:"order_id"`
	UserID       *int64 `json:"user_id"`
	ShopID       *int64 `json:"shop_id"`
	GoodID       *int64 `json:"good_id"`
	Qty          *int64 `json:"qty"`
	DeltaCount   *int64 `json:"delta_count"`
	Price        string `json:"price"`
	Amount       string `json:"amount"`
	Active       *bool  `json:"active"`
	Reason       string `json:"reason"`
	PendingUntil string `json:"pending_until"`
	WasPending   bool   `json:"was_pending"`
}

// readOutbox waits until every shard's producer checkpoint is at its
// shard's binlog end, so that every domain event was published, then reads
// every outbox topic to its end.
func readOutbox(t *testing.T, s *stack) []outboxMessage {
	t.Helper()
	for i, db := range s.shards {
		checkCheckpoint(t, s.brokers, i, db)
	}
	var names []string
	for _, a := range topics.OutboxAggregates {
		names = append(names, topics.Outbox(topics.DefaultPrefix, a))
	}
	var out []outboxMessage
	for _, r := range readTopics(t, s.brokers, names) {
		m := outboxMessage{topic: r.Topic, key: string(r.Key), value: string(r.Value)}
		for _, h := range r.Headers {
			switch h.Key {
			case "id":
				m.id = string(h.Value)
			case "type":
				m.typ = string(h.Value)
			}
		}
		out = append(out, m)
	}
	return out
}

// byID keeps each outbox message's first delivery by id and counts the
// repeats, each of which must be an exact redelivery.
func byID(msgs []outboxMessage, fail func(string, ...any)) (map[string]outboxMessage, int) {
	got := map[string]outboxMessage{}
	redelivered := 0
	for _, m := range msgs {
		if first, ok := got[m.id]; ok {
			redelivered++
			if first != m {
				fail("id %s sent twice with different content:\n%+v\n%+v", m.id, first, m)
			}
			continue
		}
		got[m.id] = m
	}
	return got, redelivered
}

// readTopics reads every message of the topics, each of which must exist,
// up to the end offsets they had when it started.
func readTopics(t testing.TB, brokers []string, names []string) []*kgo.Record {
	t.Helper()
	ctx := context.Background()
	// A transport of its own: the shared one caches metadata, and the
	// topics may have been created by another process since.
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr}
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		t.Fatal(err)
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, tp := range md.Topics {
		if tp.Error != nil {
			t.Fatalf("topic %s: %v", tp.Name, tp.Error)
		}
		for _, p := range tp.Partitions {
			req.Topics[tp.Name] = append(req.Topics[tp.Name], kafka.LastOffsetOf(p.ID))
		}
	}
	resp, err := cl.ListOffsets(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	type part struct {
		topic string
		p     int32
	}
	left := map[part]int64{} // partition -> its end offset, until read
	for name, ps := range resp.Topics {
		for _, p := range ps {
			if p.Error != nil {
				t.Fatalf("end offset of %s[%d]: %v", name, p.Partition, p.Error)
			}
			if p.LastOffset > 0 {
				left[part{name, int32(p.Partition)}] = p.LastOffset
			}
		}
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(names...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	var out []*kgo.Record
	deadline := time.Now().Add(time.Minute)
	for len(left) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("topics not read to their end within a minute: %v left", left)
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := kc.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			k := part{r.Topic, r.Partition}
			end, ok := left[k]
			if !ok {
				return // read to its end already
			}
			out = append(out, r)
			if r.Offset >= end-1 {
				delete(left, k)
			}
		})
	}
	return out
}

// checkOutbox checks the outbox topics hold exactly the domain events of
// the model's outcomes, one distinct id each (none missing, none
// invented), that any repeated message is an exact redelivery, and that
// every payload matches the rows its shard holds; it returns the number of
// redeliveries.
func checkOutbox(t *testing.T, s *stack, m *model) int {
	t.Helper()
	want := m.outboxEvents()
	msgs := readOutbox(t, s)
	errs := 0
	fail := func(f string, a ...any) {
		if errs++; errs <= 30 {
			t.Errorf(f, a...)
		}
	}
	got, redelivered := byID(msgs, fail)
	var missing []string
	for id, w := range want {
		if _, ok := got[id]; !ok {
			missing = append(missing, fmt.Sprintf("%s of %s:%d (shard %d)", w.typ, w.src.File, w.src.Line, w.shard))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		fail("%d domain events missing from the outbox topics, e.g. %v", len(missing), missing[:min(len(missing), 10)])
	}
	rows := ledgerRows(t, s)
	counts := map[string]int{}
	for id, msg := range got {
		w, ok := want[id]
		if !ok {
			fail("invented domain event: %+v", msg)
			continue
		}
		counts[w.typ]++
		if msg.typ != w.typ || msg.topic != "shop.outbox."+w.aggregate || msg.key != strconv.Quote(w.aggregateID) {
			fail("%s of %s:%d = type %s topic %s key %s; want type %s on shop.outbox.%s keyed %q", id, w.src.File, w.src.Line,
				msg.typ, msg.topic, msg.key, w.typ, w.aggregate, w.aggregateID)
		}
		var text string
		var p outboxPayload
		if err := json.Unmarshal([]byte(msg.value), &text); err != nil {
			fail("%s value %s is not a JSON string (the payload, as Debezium's router writes it): %v", w.typ, msg.value, err)
			continue
		}
		if err := json.Unmarshal([]byte(text), &p); err != nil {
			fail("%s payload %s: %v", w.typ, text, err)
			continue
		}
		if d := rows.check(w, p, m.lines[w.src]); d != "" {
			fail("%s of %s:%d: %s (payload %s)", w.typ, w.src.File, w.src.Line, d, text)
		}
	}
	t.Logf("outbox: %d domain events expected, %d distinct in the topics, %d messages (%d redeliveries); by type %v",
		len(want), len(got), len(msgs), redelivered, counts)
	return redelivered
}

// shardRows are the rows of every shard the payloads are checked against.
type shardRows struct {
	events  map[event.Source]eventsRow
	orders  map[[2]int64]orderRow // (shard, order_id)
	debits  map[[2]int64]string   // (shard, order_id) -> amount
	returns map[string]returnRow  // by event_key
}

type eventsRow struct {
	shard                   int
	eventType               int
	key, status, reason     string
	shop, user, order, good sql.NullInt64
}

type orderRow struct {
	user, good, shop, qty int64
	price                 string
}

type returnRow struct {
	order, qty int64
	amount     string
}

func ledgerRows(t *testing.T, s *stack) shardRows {
	t.Helper()
	r := shardRows{events: map[event.Source]eventsRow{}, orders: map[[2]int64]orderRow{}, debits: map[[2]int64]string{},
		returns: map[string]returnRow{}}
	query := func(db *sql.DB, q string, scan func(*sql.Rows) error) {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				t.Fatal(err)
			}
		}
	}
	for sh, db := range s.shards {
		query(db, "SELECT source_file, source_line, event_type, event_key, status, COALESCE(reason, ''), shop_id, user_id, order_id, good_id FROM events",
			func(rows *sql.Rows) error {
				var src event.Source
				e := eventsRow{shard: sh}
				err := rows.Scan(&src.File, &src.Line, &e.eventType, &e.key, &e.status, &e.reason, &e.shop, &e.user, &e.order, &e.good)
				r.events[src] = e
				return err
			})
		query(db, "SELECT order_id, user_id, good_id, shop_id, qty, price_at_order FROM purchase_history", func(rows *sql.Rows) error {
			var id int64
			var o orderRow
			err := rows.Scan(&id, &o.user, &o.good, &o.shop, &o.qty, &o.price)
			r.orders[[2]int64{int64(sh), id}] = o
			return err
		})
		query(db, "SELECT SUBSTRING(idempotency_key, 10), amount FROM account_transaction WHERE idempotency_key LIKE 'purchase:%'",
			func(rows *sql.Rows) error {
				var id int64
				var amount string
				err := rows.Scan(&id, &amount)
				r.debits[[2]int64{int64(sh), id}] = amount
				return err
			})
		query(db, "SELECT event_key, order_id, qty, amount FROM order_return", func(rows *sql.Rows) error {
			var k string
			var o returnRow
			err := rows.Scan(&k, &o.order, &o.qty, &o.amount)
			r.returns[k] = o
			return err
		})
	}
	return r
}

// check compares a payload with its line's rows and returns what differs.
func (r shardRows) check(w wantEvent, p outboxPayload, e event.Prepared) string {
	row, ok := r.events[w.src]
	switch {
	case !ok:
		return "no events row"
	case p.File != w.src.File || p.Line != w.src.Line || p.Shard != row.shard || p.EventKey != row.key:
		return fmt.Sprintf("line %s:%d shard %d key %s; the events row is on shard %d with key %s", p.File, p.Line, p.Shard, p.EventKey, row.shard, row.key)
	case w.final && row.status == "rejected" && p.Reason != row.reason:
		return fmt.Sprintf("reason %q, the events row's %q", p.Reason, row.reason)
	case w.final && row.status != "rejected" && p.Reason != "":
		return fmt.Sprintf("reason %q for a line %s", p.Reason, row.status)
	}
	for _, f := range []struct {
		name string
		got  *int64
		row  sql.NullInt64
	}{{"shop_id", p.ShopID, row.shop}, {"user_id", p.UserID, row.user}, {"order_id", p.OrderID, row.order}, {"good_id", p.GoodID, row.good}} {
		if f.got != nil && (!f.row.Valid || *f.got != f.row.Int64) {
			return fmt.Sprintf("%s %d, the events row's %v", f.name, *f.got, f.row)
		}
	}
	sh := int64(row.shard)
	switch w.typ {
	case "OrderPlaced":
		o, ok := r.orders[[2]int64{sh, e.OrderID}]
		price, _ := money.Parse(o.price)
		amount := (price * money.Cents(o.qty)).String()
		debit, debited := r.debits[[2]int64{sh, e.OrderID}]
		if !debited {
			debit = "0.00" // no debit of nothing
		}
		if !ok || p.Qty == nil || *p.Qty != o.qty || p.Price != o.price || p.Amount != amount || debit != amount {
			return fmt.Sprintf("qty %v price %s amount %s; the purchase is %+v, its debit %s", p.Qty, p.Price, p.Amount, o, debit)
		}
	case "OrderRefunded":
		ret, ok := r.returns[p.EventKey]
		if !ok || ret.order != e.OrderID || p.Qty == nil || *p.Qty != ret.qty || p.Amount != ret.amount {
			return fmt.Sprintf("qty %v amount %s; the order_return row is %+v", p.Qty, p.Amount, ret)
		}
	case "ReturnPending":
		if p.PendingUntil == "" {
			return "no pending_until"
		}
	}
	if (w.typ == "OrderRefunded" || w.typ == "ReturnRejected") && p.WasPending != w.pended {
		return fmt.Sprintf("was_pending %v; the return waited: %v", p.WasPending, w.pended)
	}
	switch w.typ {
	case "StockChanged", "StockChangeRejected":
		if p.DeltaCount == nil || *p.DeltaCount != e.Delta {
			return fmt.Sprintf("delta_count %v, the line's %d", p.DeltaCount, e.Delta)
		}
	case "PriceChanged":
		if p.Price != e.Price.String() {
			return fmt.Sprintf("price %s, the line's %s", p.Price, e.Price)
		}
	case "ShopOpened", "ShopClosed":
		if p.Active == nil || *p.Active != e.Active {
			return fmt.Sprintf("active %v, the line's %v", p.Active, e.Active)
		}
	}
	return ""
}

// checkOutboxRows checks the outbox topics against the shards' events rows
// alone, for runs without a model (generated load): every outcome recorded
// has its domain event, every message is the event of a recorded line with
// a type its outcome allows, one distinct id each, repeats only exact
// redeliveries. (Whether a settled return waited, and whether a shop
// event opened or closed, is not in the events row: its ReturnPending is
// allowed, not required, and one of ShopOpened and ShopClosed is required.)
func checkOutboxRows(t *testing.T, s *stack) {
	t.Helper()
	id := func(src event.Source, typ string) string {
		return uuid.NewSHA1(outboxNamespace, fmt.Appendf(nil, "%s:%d:%s", src.File, src.Line, typ)).String()
	}
	rows := ledgerRows(t, s)
	allowed := map[string]bool{} // id -> required
	var alternatives [][2]string // one of each pair required
	for src, r := range rows.events {
		var types []string
		switch {
		case r.status == "duplicate":
			continue
		case r.status == "pending":
			allowed[id(src, "ReturnPending")] = true
			continue
		case strings.HasPrefix(r.reason, "invalid: "):
			types = []string{"LineRejected"}
		}
		applied := r.status == "applied"
		if types == nil {
			switch r.eventType {
			case int(event.Purchase):
				types = []string{map[bool]string{true: "OrderPlaced", false: "OrderRejected"}[applied]}
			case int(event.Return):
				types = []string{map[bool]string{true: "OrderRefunded", false: "ReturnRejected"}[applied]}
				allowed[id(src, "ReturnPending")] = false
			case int(event.StockChange):
				types = []string{map[bool]string{true: "StockChanged", false: "StockChangeRejected"}[applied]}
			case int(event.PriceChange):
				types = []string{"PriceChanged"}
			case int(event.ShopStatus):
				a, b := id(src, "ShopOpened"), id(src, "ShopClosed")
				allowed[a], allowed[b] = false, false
				alternatives = append(alternatives, [2]string{a, b})
			}
		}
		for _, typ := range types {
			allowed[id(src, typ)] = true
		}
	}
	msgs := readOutbox(t, s)
	errs := 0
	fail := func(f string, a ...any) {
		if errs++; errs <= 20 {
			t.Errorf(f, a...)
		}
	}
	got, redelivered := byID(msgs, fail)
	for _, m := range got {
		if _, ok := allowed[m.id]; !ok {
			fail("invented domain event (no recorded outcome allows it): %+v", m)
		}
	}
	missing := 0
	for i, required := range allowed {
		if _, ok := got[i]; required && !ok {
			missing++
		}
	}
	for _, alt := range alternatives {
		_, a := got[alt[0]]
		_, b := got[alt[1]]
		if a == b {
			fail("shop event %s/%s: %v and %v in the topics, want exactly one", alt[0], alt[1], a, b)
		}
	}
	if missing > 0 {
		fail("%d recorded outcomes have no domain event in the outbox topics", missing)
	}
	t.Logf("outbox: %d distinct domain events for %d events rows, %d messages (%d redeliveries)", len(got), len(rows.events), len(msgs), redelivered)
}
