package e2e

import (
	"fmt"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/money"
	"github.com/shopledger/shopledger/internal/shard"
)

// model recomputes, one event at a time and without the ledger's batching,
// what the rules of SPEC §4 make of a sequence of events files. It shares
// only the line parser with the product; routing and every rule are written
// again here, plainly, so that the two can disagree.
type model struct {
	shards  int
	initial money.Cents
	index   map[int64]int64 // order -> shop, from every purchase split so far
	held    []heldLine
	outcome map[event.Source]outcome
	state   []*shardState
	lines   map[event.Source]event.Prepared // every line applied to a shard
	pended  map[event.Source]bool           // returns that waited for their purchase
}

type outcome struct {
	shard  int // -1 for malformed or held lines
	status string
}

type heldLine struct {
	src     event.Source
	orderID int64
	raw     []byte
}

type modelOrder struct {
	user, good, shop, qty, returned int64
	price, refunded                 money.Cents
}

type modelStock struct {
	count int64
	price money.Cents
}

type shardState struct {
	users   map[int64]money.Cents
	stock   map[[2]int64]*modelStock
	closed  map[int64]bool
	orders  map[int64]*modelOrder
	seen    map[string]bool
	pending map[int64][]event.Prepared
}

func newModel(shards int, initial money.Cents) *model {
	m := &model{shards: shards, initial: initial, index: map[int64]int64{}, outcome: map[event.Source]outcome{},
		lines: map[event.Source]event.Prepared{}, pended: map[event.Source]bool{}}
	for range shards {
		m.state = append(m.state, &shardState{users: map[int64]money.Cents{}, stock: map[[2]int64]*modelStock{},
			closed: map[int64]bool{}, orders: map[int64]*modelOrder{}, seen: map[string]bool{}, pending: map[int64][]event.Prepared{}})
	}
	return m
}

// file routes and applies one events file, as splitter and workers would.
func (m *model) file(stem string, lines [][]byte) {
	perShard := make([][]event.Routed, m.shards)
	type parsed struct {
		h   event.Head
		raw []byte
		ok  bool
	}
	ps := make([]parsed, len(lines))
	for i, raw := range lines {
		h, err := event.ParseHead(raw)
		ps[i] = parsed{h, raw, err == nil}
		if err == nil && h.Type == event.Purchase && h.OrderID != nil {
			if _, ok := m.index[*h.OrderID]; !ok {
				m.index[*h.OrderID] = *h.ShopID
			}
		}
	}
	for i, p := range ps {
		src := event.Source{File: stem, Line: i + 1}
		if !p.ok {
			m.outcome[src] = outcome{-1, "malformed"}
			continue
		}
		shop := p.h.ShopID
		if shop == nil {
			s, ok := m.index[*p.h.OrderID]
			if !ok {
				m.held = append(m.held, heldLine{src, *p.h.OrderID, p.raw})
				m.outcome[src] = outcome{-1, "held"}
				continue
			}
			shop = &s
		}
		sh := shard.For(*shop, m.shards)
		perShard[sh] = append(perShard[sh], event.Routed{Src: src, Key: p.h.Key, ShopID: shop, Event: p.raw})
	}
	var still []heldLine
	for _, h := range m.held {
		s, ok := m.index[h.orderID]
		if !ok {
			still = append(still, h)
			continue
		}
		key, _ := event.ParseHead(h.raw)
		sh := shard.For(s, m.shards)
		perShard[sh] = append(perShard[sh], event.Routed{Src: h.src, Key: key.Key, ShopID: &s, Event: h.raw})
	}
	m.held = still
	for sh, rs := range perShard {
		for _, r := range rs {
			m.apply(sh, event.Prepare(r))
		}
	}
}

func (m *model) set(sh int, e event.Prepared, status string) {
	m.outcome[e.Src] = outcome{sh, status}
	if status != "duplicate" {
		m.state[sh].seen[e.Key] = true
	}
}

func (m *model) user(st *shardState, id int64) {
	if _, ok := st.users[id]; !ok {
		st.users[id] = m.initial
	}
}

func (m *model) apply(sh int, e event.Prepared) {
	st := m.state[sh]
	m.lines[e.Src] = e
	switch {
	case st.seen[e.Key]:
		m.set(sh, e, "duplicate")
		return
	case e.Reject != "":
		m.set(sh, e, "rejected")
		return
	}
	k := [2]int64{e.ShopID, e.GoodID}
	switch e.Type {
	case event.StockChange:
		row := st.stock[k]
		if row == nil {
			row = &modelStock{}
		}
		if row.count+e.Delta < 0 {
			m.set(sh, e, "rejected")
			return
		}
		row.count += e.Delta
		st.stock[k] = row
	case event.PriceChange:
		row := st.stock[k]
		if row == nil {
			row = &modelStock{}
			st.stock[k] = row
		}
		row.price = *e.Price
	case event.ShopStatus:
		st.closed[e.ShopID] = !e.Active
	case event.Purchase:
		m.user(st, e.UserID)
		ok := m.purchase(st, e)
		m.set(sh, e, map[bool]string{true: "applied", false: "rejected"}[ok])
		waiting := st.pending[e.OrderID]
		delete(st.pending, e.OrderID)
		for _, r := range waiting {
			status := "rejected"
			if ok && m.refund(st, r) {
				status = "applied"
			}
			m.set(sh, r, status)
		}
		return
	case event.Return:
		m.user(st, e.UserID)
		if st.orders[e.OrderID] == nil {
			st.pending[e.OrderID] = append(st.pending[e.OrderID], e)
			m.pended[e.Src] = true
			m.set(sh, e, "pending")
			return
		}
		if !m.refund(st, e) {
			m.set(sh, e, "rejected")
			return
		}
	}
	m.set(sh, e, "applied")
}

func (m *model) purchase(st *shardState, e event.Prepared) bool {
	row := st.stock[[2]int64{e.ShopID, e.GoodID}]
	if st.orders[e.OrderID] != nil || st.closed[e.ShopID] || row == nil {
		return false
	}
	price := row.price
	if e.Price != nil {
		price = *e.Price
	}
	cost := price * money.Cents(e.Qty)
	if row.count < e.Qty || st.users[e.UserID] < cost {
		return false
	}
	row.count -= e.Qty
	st.users[e.UserID] -= cost
	st.orders[e.OrderID] = &modelOrder{user: e.UserID, good: e.GoodID, shop: e.ShopID, qty: e.Qty, price: price}
	return true
}

func (m *model) refund(st *shardState, e event.Prepared) bool {
	o := st.orders[e.OrderID]
	if o.user != e.UserID || o.good != e.GoodID || o.shop != e.ShopID || e.Qty > o.qty-o.returned {
		return false
	}
	amount := o.price * money.Cents(e.Qty)
	if e.Amount != nil {
		amount = *e.Amount
	}
	if amount > o.price*money.Cents(o.qty)-o.refunded {
		return false
	}
	o.returned += e.Qty
	o.refunded += amount
	st.stock[[2]int64{o.shop, o.good}].count += e.Qty
	st.users[e.UserID] += amount
	return true
}

// compare checks the shards against the model and returns every difference.
func (m *model) compare(s *stack) []string {
	var diffs []string
	add := func(f string, a ...any) {
		if len(diffs) < 50 {
			diffs = append(diffs, fmt.Sprintf(f, a...))
		}
	}
	got := map[event.Source]outcome{}
	for sh, db := range s.shards {
		rows, err := db.Query("SELECT source_file, source_line, status FROM events")
		if err != nil {
			s.t.Fatal(err)
		}
		for rows.Next() {
			var src event.Source
			var status string
			rows.Scan(&src.File, &src.Line, &status)
			got[src] = outcome{sh, status}
		}
		rows.Close()
	}
	for src, want := range m.outcome {
		if want.shard < 0 {
			if g, ok := got[src]; ok {
				add("%s:%d is %s on shard %d, want %s", src.File, src.Line, g.status, g.shard, want.status)
			}
			continue
		}
		if g := got[src]; g != want {
			add("%s:%d = %+v, want %+v", src.File, src.Line, g, want)
		}
	}
	for sh, st := range m.state {
		balances := map[int64]money.Cents{}
		rows, err := s.shards[sh].Query("SELECT id, balance FROM user")
		if err != nil {
			s.t.Fatal(err)
		}
		for rows.Next() {
			var id int64
			var b money.Cents
			rows.Scan(&id, &b)
			balances[id] = b
		}
		rows.Close()
		if len(balances) != len(st.users) {
			add("shard %d has %d users, want %d", sh, len(balances), len(st.users))
		}
		for id, want := range st.users {
			if balances[id] != want {
				add("shard %d user %d balance %s, want %s", sh, id, balances[id], want)
			}
		}
		stock := map[[2]int64]modelStock{}
		rows, err = s.shards[sh].Query("SELECT id, good_id, count, price FROM shop")
		if err != nil {
			s.t.Fatal(err)
		}
		for rows.Next() {
			var k [2]int64
			var v modelStock
			rows.Scan(&k[0], &k[1], &v.count, &v.price)
			stock[k] = v
		}
		rows.Close()
		if len(stock) != len(st.stock) {
			add("shard %d has %d stock rows, want %d", sh, len(stock), len(st.stock))
		}
		for k, want := range st.stock {
			if stock[k] != *want {
				add("shard %d shop %d good %d = %+v, want %+v", sh, k[0], k[1], stock[k], *want)
			}
		}
	}
	return diffs
}

// splitLines turns generated lines into strings for stack.produce.
func splitLines(lines [][]byte) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = string(l)
	}
	return out
}
