package ledger

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/topics"
)

// The payload of each domain event carries what the ledger decided (prices
// charged, amounts, stock after, reasons), besides the line it comes from.
func TestDomainEventPayloads(t *testing.T) {
	s := given{users: map[int64]string{7: "100.00"}, stock: map[stockKey][2]string{{1, 1}: {"10", "2.50"}}}.state()
	s.cfg.Shard = 3
	at := time.Date(2025, 10, 15, 17, 41, 40, 21_000_000, time.UTC)
	evs := []event.Prepared{
		with(ret("r", 100, 7, 1, 1, 1), func(e *event.Prepared) { e.Amount = cents("2.00") }),
		with(buy("b", 100, 7, 1, 1, 4), func(e *event.Prepared) { e.TS = at }),
		with(buy("x", 101, 7, 1, 1, 1), func(e *event.Prepared) { e.Price = cents("1.00") }),
		price("p", 1, 1, "3.00"),
		price("q", 1, 9, "4.00"),
		with(loss("l", 1, 1, 2), func(e *event.Prepared) { e.Reason = "broken in transit" }),
		shopOpen("c", 1, false),
		with(restock("bad", 1, 1, 1), func(e *event.Prepared) { e.Reject = "missing good_id" }),
	}
	for _, e := range evs {
		s.apply(e)
	}
	type want struct {
		typ       DomainType
		aggregate string
		fields    map[string]any
	}
	wants := []want{
		{ReturnPending, "100", map[string]any{"order_id": 100.0, "user_id": 7.0, "shop_id": 1.0, "good_id": 1.0, "qty": 1.0,
			"refund_amount": "2.00", "pending_until": "1970-01-01T00:17:40.000Z", "event_type": "return"}},
		{OrderPlaced, "100", map[string]any{"order_id": 100.0, "user_id": 7.0, "shop_id": 1.0, "good_id": 1.0, "qty": 4.0,
			"price": "2.50", "amount": "10.00", "stock_after": 6.0, "timestamp": "2025-10-15T17:41:40.021Z", "shard": 3.0}},
		{OrderRefunded, "100", map[string]any{"order_id": 100.0, "qty": 1.0, "amount": "2.00", "stock_after": 7.0, "was_pending": true,
			"event_key": "r"}},
		{OrderRejected, "101", map[string]any{"order_id": 101.0, "price_at_order": "1.00",
			"reason": "price_at_order 1.00 differs from the shop's price 2.50"}},
		{PriceChanged, "1", map[string]any{"shop_id": 1.0, "good_id": 1.0, "price": "3.00", "old_price": "2.50"}},
		{PriceChanged, "1", map[string]any{"shop_id": 1.0, "good_id": 9.0, "price": "4.00", "old_price": nil}},
		{StockChanged, "1", map[string]any{"shop_id": 1.0, "good_id": 1.0, "delta_count": -2.0, "sub_event_type": "loss",
			"change_reason": "broken in transit", "stock_after": 5.0}},
		{ShopClosed, "1", map[string]any{"shop_id": 1.0, "active": false, "good_id": nil}},
		{LineRejected, "20250101000000", map[string]any{"reason": "invalid: missing good_id", "event_key": "bad", "shop_id": nil,
			"event_type": nil}},
	}
	if len(s.outbox) != len(wants) {
		t.Fatalf("domain events = %v, want %d", domainTypes(s.outbox), len(wants))
	}
	for i, w := range wants {
		ev := s.outbox[i]
		var p map[string]any
		if err := json.Unmarshal(ev.payload, &p); err != nil {
			t.Fatalf("payload %s: %v", ev.payload, err)
		}
		if ev.typ != w.typ || ev.aggregateID != w.aggregate {
			t.Errorf("event %d = %s of %s %s, want %s of %s", i, ev.typ, ev.typ.Aggregate(), ev.aggregateID, w.typ, w.aggregate)
		}
		src := event.Source{File: p["file"].(string), Line: int(p["line"].(float64))}
		if ev.id != EventID(src, ev.typ) || uuid.MustParse(ev.id).Version() != 5 {
			t.Errorf("event %d id = %s, want the version 5 UUID of %s:%d:%s", i, ev.id, src.File, src.Line, ev.typ)
		}
		for k, v := range w.fields {
			if got, ok := p[k]; got != v || (v == nil && ok) {
				t.Errorf("%s payload %s = %v, want %v (payload %s)", ev.typ, k, got, v, ev.payload)
			}
		}
	}
	// A return and its refund are two events of the same line: two ids.
	if s.outbox[0].id == s.outbox[2].id {
		t.Errorf("ReturnPending and OrderRefunded of one line share id %s", s.outbox[0].id)
	}
}

// The cdc-producer creates a topic per aggregate up front: every aggregate
// the ledger publishes is in that list.
func TestAggregatesHaveTopics(t *testing.T) {
	for _, typ := range []DomainType{OrderPlaced, OrderRejected, ReturnPending, OrderRefunded, ReturnRejected, StockChanged,
		StockChangeRejected, PriceChanged, ShopOpened, ShopClosed, LineRejected} {
		if a := string(typ.Aggregate()); !slices.Contains(topics.OutboxAggregates, a) {
			t.Errorf("%s belongs to aggregate %q, which is not in topics.OutboxAggregates %v", typ, a, topics.OutboxAggregates)
		}
	}
}

// marshal writes a payload byte for byte as encoding/json does, whatever
// its strings hold (quotes, control and HTML characters, non-ASCII,
// invalid UTF-8) and whichever fields are set.
func FuzzPayloadEncoding(f *testing.F) {
	f.Add("k", "purchase", "20251015174140", "r <&> \"é\" \u2028 \xff", "12.50", int64(-3), 7, uint16(0xffff))
	f.Add("", "", "", "", "", int64(0), 0, uint16(0))
	f.Fuzz(func(t *testing.T, key, typ, file, text, money string, n int64, line int, set uint16) {
		bit := func(i int) bool { return set&(1<<i) != 0 }
		ptr := func(i int) *int64 {
			if bit(i) {
				v := n + int64(i)
				return &v
			}
			return nil
		}
		str := func(i int, s string) string {
			if bit(i) {
				return s
			}
			return ""
		}
		active := bit(14)
		p := Payload{EventKey: key, EventType: typ, File: file, Line: line, Shard: int(n % 1000), Timestamp: str(0, money),
			OrderID: ptr(1), UserID: ptr(2), ShopID: ptr(3), GoodID: ptr(4), Qty: ptr(5), DeltaCount: ptr(6),
			SubEventType: str(7, typ), ChangeReason: str(8, text), Price: str(9, money), OldPrice: str(10, money),
			PriceAtOrder: str(11, money), Amount: str(12, text), RefundAmount: str(13, money), StockAfter: ptr(14),
			Reason: str(15, text), PendingUntil: str(1, file), WasPending: bit(2)}
		if bit(3) {
			p.Active = &active
		}
		want, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := marshal(p); string(got) != string(want) {
			t.Fatalf("marshal(%+v) =\n%s\nwant\n%s", p, got, want)
		}
	})
}
