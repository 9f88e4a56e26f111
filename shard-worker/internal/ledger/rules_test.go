package ledger

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/money"
)

// Every rule of SPEC §4, fed through the pure rules: each case starts from
// some rows already in the shard, applies events in order, and checks each
// event's status and reason, and the balances and stock after.

var line = 0

func ev(t event.Type, key string, f func(*event.Prepared)) event.Prepared {
	line++
	e := event.Prepared{Src: event.Source{File: "20250101000000", Line: line}, Key: key, Type: t, TS: time.Unix(0, 0)}
	f(&e)
	return e
}

func cents(s string) *money.Cents {
	c, err := money.Parse(s)
	if err != nil {
		panic(err)
	}
	return &c
}

func restock(key string, shop, good, n int64) event.Prepared {
	return ev(event.StockChange, key, func(e *event.Prepared) { e.ShopID, e.GoodID, e.Delta, e.Sub = shop, good, n, "restock" })
}

func loss(key string, shop, good, n int64) event.Prepared {
	return ev(event.StockChange, key, func(e *event.Prepared) { e.ShopID, e.GoodID, e.Delta, e.Sub = shop, good, -n, "loss" })
}

func price(key string, shop, good int64, p string) event.Prepared {
	return ev(event.PriceChange, key, func(e *event.Prepared) { e.ShopID, e.GoodID, e.Price = shop, good, cents(p) })
}

func buy(key string, order, user, shop, good, qty int64) event.Prepared {
	return ev(event.Purchase, key, func(e *event.Prepared) {
		e.OrderID, e.UserID, e.ShopID, e.GoodID, e.Qty = order, user, shop, good, qty
	})
}

func ret(key string, order, user, shop, good, qty int64) event.Prepared {
	return ev(event.Return, key, func(e *event.Prepared) {
		e.OrderID, e.UserID, e.ShopID, e.GoodID, e.Qty = order, user, shop, good, qty
	})
}

func shopOpen(key string, shop int64, open bool) event.Prepared {
	return ev(event.ShopStatus, key, func(e *event.Prepared) { e.ShopID, e.Active = shop, open })
}

func with(e event.Prepared, f func(*event.Prepared)) event.Prepared {
	f(&e)
	return e
}

// given is the shard before the batch.
type given struct {
	users   map[int64]string       // balance
	stock   map[stockKey][2]string // count, price
	closed  []int64                // shops
	orders  map[int64]orderRow     // purchases
	pending []event.Prepared       // returns held by earlier batches
	seen    []string               // identities applied before
}

func (g given) state() *state {
	s := newState(Config{Shard: 0, InitialBalance: 100000, PendingDelay: time.Minute}, time.Unix(1000, 0))
	for id, b := range g.users {
		s.users[id] = &userRow{balance: *cents(b)}
	}
	for k, v := range g.stock {
		var n int64
		fmt.Sscan(v[0], &n)
		s.stock[k] = &stockRow{count: n, price: *cents(v[1]), exists: true}
	}
	for _, id := range g.closed {
		s.shops[id] = &shopRow{active: false}
	}
	for id, o := range g.orders {
		s.orders[id] = &o
	}
	for _, p := range g.pending {
		s.pending[p.OrderID] = append(s.pending[p.OrderID], pendingRef{stored: true, ev: p})
	}
	for _, k := range g.seen {
		s.seen[k] = true
	}
	return s
}

// outcome is one event's expected events row: status and a part of its
// reason ("" for none).
type outcome struct {
	status Status
	reason string
}

func TestRules(t *testing.T) {
	shop1good1 := map[stockKey][2]string{{1, 1}: {"10", "2.50"}}
	rich := map[int64]string{7: "100.00"}
	cases := []struct {
		name    string
		given   given
		events  []event.Prepared
		want    []outcome
		balance map[int64]string // after
		stock   map[stockKey]int64
		txs     int // account transactions written
		// domain are the domain events published, in order: one per
		// outcome (none for a duplicate), and ReturnPending before the
		// outcome of a return that waited.
		domain []DomainType
	}{
		{name: "restock and loss move stock", domain: []DomainType{StockChanged, StockChanged}, given: given{stock: shop1good1},
			events: []event.Prepared{restock("a", 1, 1, 5), loss("b", 1, 1, 3)},
			want:   []outcome{{StatusApplied, ""}, {StatusApplied, ""}}, stock: map[stockKey]int64{{1, 1}: 12}},
		{name: "stock never goes below zero", domain: []DomainType{StockChangeRejected}, given: given{stock: shop1good1},
			events: []event.Prepared{loss("a", 1, 1, 11)},
			want:   []outcome{{StatusRejected, "stock would go below zero"}}, stock: map[stockKey]int64{{1, 1}: 10}},
		{name: "stock never overflows", domain: []DomainType{StockChangeRejected, StockChanged, StockChangeRejected}, given: given{stock: map[stockKey][2]string{{1, 1}: {fmt.Sprint(int64(math.MaxInt64)), "1.00"}}},
			events: []event.Prepared{restock("a", 1, 1, 1), restock("b", 1, 2, math.MaxInt64), restock("c", 1, 2, 1)},
			want:   []outcome{{StatusRejected, "stock would exceed"}, {StatusApplied, ""}, {StatusRejected, "stock would exceed"}},
			stock:  map[stockKey]int64{{1, 1}: math.MaxInt64, {1, 2}: math.MaxInt64}},
		{name: "a first-seen user is credited the initial balance", domain: []DomainType{OrderPlaced}, given: given{stock: shop1good1},
			events: []event.Prepared{buy("a", 100, 9, 1, 1, 2)},
			want:   []outcome{{StatusApplied, ""}}, balance: map[int64]string{9: "995.00"}, stock: map[stockKey]int64{{1, 1}: 8}, txs: 2},
		{name: "a purchase debits qty × the shop's price", domain: []DomainType{OrderPlaced}, given: given{users: rich, stock: shop1good1},
			events: []event.Prepared{buy("a", 100, 7, 1, 1, 4)},
			want:   []outcome{{StatusApplied, ""}}, balance: map[int64]string{7: "90.00"}, stock: map[stockKey]int64{{1, 1}: 6}, txs: 1},
		{name: "price_at_order is never trusted for the debit", domain: []DomainType{OrderRejected, OrderPlaced}, given: given{users: rich, stock: shop1good1},
			events: []event.Prepared{with(buy("a", 100, 7, 1, 1, 4), func(e *event.Prepared) { e.Price = cents("0") }),
				with(buy("b", 101, 7, 1, 1, 1), func(e *event.Prepared) { e.Price = cents("2.50") })},
			want:    []outcome{{StatusRejected, "price_at_order 0.00 differs from the shop's price 2.50"}, {StatusApplied, ""}},
			balance: map[int64]string{7: "97.50"}, stock: map[stockKey]int64{{1, 1}: 9}, txs: 1},
		{name: "a purchase follows a price change in the same batch", domain: []DomainType{PriceChanged, OrderPlaced}, given: given{users: rich, stock: shop1good1},
			events: []event.Prepared{price("p", 1, 1, "3.00"), buy("a", 100, 7, 1, 1, 2)},
			want:   []outcome{{StatusApplied, ""}, {StatusApplied, ""}}, balance: map[int64]string{7: "94.00"}},
		{name: "a closed shop sells nothing; reopened, it does", domain: []DomainType{OrderRejected, ShopOpened, OrderPlaced, ShopClosed, OrderRejected}, given: given{users: rich, stock: shop1good1, closed: []int64{1}},
			events: []event.Prepared{buy("a", 100, 7, 1, 1, 1), shopOpen("o", 1, true), buy("b", 101, 7, 1, 1, 1), shopOpen("c", 1, false), buy("d", 102, 7, 1, 1, 1)},
			want: []outcome{{StatusRejected, "shop 1 is closed"}, {StatusApplied, ""}, {StatusApplied, ""}, {StatusApplied, ""},
				{StatusRejected, "shop 1 is closed"}}, balance: map[int64]string{7: "97.50"}},
		{name: "a good not sold in the shop", domain: []DomainType{OrderRejected}, given: given{users: rich, stock: shop1good1},
			events: []event.Prepared{buy("a", 100, 7, 1, 2, 1)}, want: []outcome{{StatusRejected, "good 2 is not sold in shop 1"}}},
		{name: "insufficient stock", domain: []DomainType{OrderRejected}, given: given{users: rich, stock: shop1good1},
			events: []event.Prepared{buy("a", 100, 7, 1, 1, 11)}, want: []outcome{{StatusRejected, "insufficient stock"}}},
		{name: "insufficient balance", domain: []DomainType{OrderRejected}, given: given{users: map[int64]string{7: "4.99"}, stock: shop1good1},
			events: []event.Prepared{buy("a", 100, 7, 1, 1, 2)}, want: []outcome{{StatusRejected, "insufficient balance"}},
			balance: map[int64]string{7: "4.99"}, stock: map[stockKey]int64{{1, 1}: 10}},
		{name: "an amount too large", domain: []DomainType{OrderRejected}, given: given{users: rich, stock: map[stockKey][2]string{{1, 1}: {"10", "9999999999999999.00"}}},
			events: []event.Prepared{buy("a", 100, 7, 1, 1, 2)}, want: []outcome{{StatusRejected, "too large"}}},
		{name: "an order id used twice", domain: []DomainType{OrderPlaced, OrderRejected}, given: given{users: rich, stock: shop1good1},
			events: []event.Prepared{buy("a", 100, 7, 1, 1, 1), buy("b", 100, 7, 1, 1, 1)},
			want:   []outcome{{StatusApplied, ""}, {StatusRejected, "order 100 already exists"}}},
		{name: "duplicates are applied once, within a batch and across batches", domain: []DomainType{StockChanged}, given: given{users: rich, stock: shop1good1, seen: []string{"old"}},
			events: []event.Prepared{restock("old", 1, 1, 5), restock("a", 1, 1, 5), restock("a", 1, 1, 5)},
			want:   []outcome{{StatusDuplicate, ""}, {StatusApplied, ""}, {StatusDuplicate, ""}}, stock: map[stockKey]int64{{1, 1}: 15}},
		{name: "an invalid event is recorded with its reason", domain: []DomainType{LineRejected}, given: given{},
			events: []event.Prepared{with(restock("a", 1, 1, 5), func(e *event.Prepared) { e.Reject = "missing good_id" })},
			want:   []outcome{{StatusRejected, "invalid: missing good_id"}}},
		{name: "a return refunds and restocks", domain: []DomainType{OrderRefunded}, given: given{users: rich, stock: shop1good1,
			orders: map[int64]orderRow{100: {userID: 7, goodID: 1, shopID: 1, qty: 3, price: 250}}},
			events: []event.Prepared{ret("r", 100, 7, 1, 1, 2)}, want: []outcome{{StatusApplied, ""}},
			balance: map[int64]string{7: "105.00"}, stock: map[stockKey]int64{{1, 1}: 12}, txs: 1},
		{name: "a return's refund_amount is capped by what was paid", domain: []DomainType{ReturnRejected, OrderRefunded}, given: given{users: rich, stock: shop1good1,
			orders: map[int64]orderRow{100: {userID: 7, goodID: 1, shopID: 1, qty: 3, price: 250}}},
			events: []event.Prepared{with(ret("r", 100, 7, 1, 1, 1), func(e *event.Prepared) { e.Amount = cents("8.00") }),
				with(ret("s", 100, 7, 1, 1, 1), func(e *event.Prepared) { e.Amount = cents("1.00") })},
			want:    []outcome{{StatusRejected, "refund of 8.00 exceeds the 7.50 left"}, {StatusApplied, ""}},
			balance: map[int64]string{7: "101.00"}},
		{name: "a return never exceeds what was bought", domain: []DomainType{ReturnRejected}, given: given{users: rich, stock: shop1good1,
			orders: map[int64]orderRow{100: {userID: 7, goodID: 1, shopID: 1, qty: 3, price: 250, returned: 2}}},
			events: []event.Prepared{ret("r", 100, 7, 1, 1, 2)}, want: []outcome{{StatusRejected, "exceeds the 1 left of order 100"}}},
		{name: "a return must match its purchase", domain: []DomainType{ReturnRejected, ReturnRejected, ReturnRejected}, given: given{users: rich, stock: shop1good1,
			orders: map[int64]orderRow{100: {userID: 7, goodID: 1, shopID: 1, qty: 3, price: 250}}},
			events: []event.Prepared{ret("r", 100, 8, 1, 1, 1), ret("s", 100, 7, 1, 2, 1), ret("t", 100, 7, 2, 1, 1)},
			want: []outcome{{StatusRejected, "bought by user 7, not user 8"}, {StatusRejected, "for good 1, not good 2"},
				{StatusRejected, "bought in shop 1, not shop 2"}}},
		{name: "a return before its purchase is pending, settled by the purchase in the same batch", domain: []DomainType{ReturnPending, OrderPlaced, OrderRefunded}, given: given{users: rich, stock: shop1good1},
			events: []event.Prepared{ret("r", 100, 7, 1, 1, 1), buy("a", 100, 7, 1, 1, 2)},
			want:   []outcome{{StatusApplied, ""}, {StatusApplied, ""}}, balance: map[int64]string{7: "97.50"}, stock: map[stockKey]int64{{1, 1}: 9}},
		{name: "a return before its purchase stays pending", domain: []DomainType{ReturnPending}, given: given{users: rich, stock: shop1good1},
			events: []event.Prepared{ret("r", 100, 7, 1, 1, 1)}, want: []outcome{{StatusPending, ""}}},
		{name: "a pending return is rejected with its rejected purchase", domain: []DomainType{ReturnPending, OrderRejected, ReturnRejected}, given: given{users: rich, stock: shop1good1, closed: []int64{1}},
			events: []event.Prepared{ret("r", 100, 7, 1, 1, 1), buy("a", 100, 7, 1, 1, 2)},
			want:   []outcome{{StatusRejected, "purchase of order 100 was rejected: shop 1 is closed"}, {StatusRejected, "shop 1 is closed"}}},
		{name: "an orphaned return is rejected", domain: []DomainType{ReturnRejected}, given: given{users: rich},
			events: []event.Prepared{with(ret("r", 100, 7, 1, 1, 1), func(e *event.Prepared) { e.Orphan = true })},
			want:   []outcome{{StatusRejected, "orphaned return"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.given.state()
			for _, e := range c.events {
				s.apply(e)
			}
			if len(s.rows) != len(c.events) {
				t.Fatalf("%d events rows for %d events", len(s.rows), len(c.events))
			}
			for i, w := range c.want {
				if r := s.rows[i]; r.status != w.status || !strings.Contains(r.reason, w.reason) || (w.reason == "" && r.reason != "") {
					t.Errorf("event %d (%s %q) = %s %q, want %s with %q", i, r.ev.Type, r.ev.Key, r.status, r.reason, w.status, w.reason)
				}
			}
			for id, want := range c.balance {
				if got := s.users[id]; got == nil || got.balance != *cents(want) {
					t.Errorf("balance of user %d = %v, want %s", id, got, want)
				}
			}
			for k, want := range c.stock {
				if got := s.stock[k]; got == nil || got.count != want {
					t.Errorf("stock of %v = %+v, want %d", k, got, want)
				}
			}
			if c.txs != 0 && len(s.txs) != c.txs {
				t.Errorf("%d account transactions, want %d: %+v", len(s.txs), c.txs, s.txs)
			}
			if got := domainTypes(s.outbox); !slices.Equal(got, c.domain) {
				t.Errorf("domain events = %v, want %v", got, c.domain)
			}
		})
	}
}

// Returns held by an earlier batch are settled, in arrival order, when
// their purchase arrives; the held rows become settled records.
func TestRulesSettleStoredPending(t *testing.T) {
	held := []event.Prepared{ret("r1", 100, 7, 1, 1, 1), ret("r2", 100, 7, 1, 1, 5)}
	s := given{users: map[int64]string{7: "100.00"}, stock: map[stockKey][2]string{{1, 1}: {"10", "2.00"}}, pending: held}.state()
	s.apply(buy("a", 100, 7, 1, 1, 2))
	if len(s.settled) != 2 || s.stats.Resolved != 2 {
		t.Fatalf("settled = %+v, want both held returns", s.settled)
	}
	if s.settled[0].status != StatusApplied || s.settled[1].status != StatusRejected || !strings.Contains(s.settled[1].reason, "exceeds the 1 left") {
		t.Errorf("settled = %s %q, %s %q; want applied, then rejected for exceeding what is left",
			s.settled[0].status, s.settled[0].reason, s.settled[1].status, s.settled[1].reason)
	}
	if got := s.users[7].balance; got != 9800 {
		t.Errorf("balance = %s, want 98.00 (100 - 4.00 + 2.00)", got)
	}
	// Their ReturnPending went out with the batch that held them.
	if got, want := domainTypes(s.outbox), []DomainType{OrderPlaced, OrderRefunded, ReturnRejected}; !slices.Equal(got, want) {
		t.Errorf("domain events = %v, want %v", got, want)
	}
}

func domainTypes(evs []domainEvent) []DomainType {
	var out []DomainType
	for _, ev := range evs {
		out = append(out, ev.typ)
	}
	return out
}
