// Package eventgen generates coherent events for the ingest generator, the
// tests and the benchmarks: prices before sales, restocks, purchases (some
// beyond the buyer's balance or the stock, some in closed shops), returns of
// earlier purchases with and without shop_id, returns sent before their
// purchase, and verbatim duplicates of earlier lines. The same seed gives the
// same events.
package eventgen

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/money"
)

// World sizes the generated data.
type World struct {
	Shops, Goods, Users int
}

// Model holds what the generator remembers between events.
type Model struct {
	w       World
	rng     *rand.Rand // not safe for concurrent use
	prices  map[[2]int64]money.Cents
	priced  [][2]int64         // keys of prices, to pick from
	stock   map[[2]int64]int64 // the generator's own estimate of stock
	stocked [][2]int64         // pairs that have a price and were restocked
	closed  map[int64]bool
	recent  []purchase // ring of recent purchases, for returns
	next    int
	later   [][]byte // purchases whose return was already sent
	history [][]byte // recent lines, for duplicates
	seq     int64
}

type purchase struct {
	orderID, userID, shopID, goodID, qty int64
	price                                money.Cents
}

// New returns a model seeded with seed.
func New(w World, seed uint64) *Model {
	return &Model{w: w, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		prices: map[[2]int64]money.Cents{}, stock: map[[2]int64]int64{}, closed: map[int64]bool{}, recent: make([]purchase, 0, 512)}
}

type envelope struct {
	EventType      int    `json:"event_type"`
	Payload        any    `json:"payload"`
	SavedAt        string `json:"saved_at"`
	Timestamp      string `json:"timestamp"`
	IdempotencyKey string `json:"idempotency_key"`
}

// Batch returns n event lines for the file of the tick at t, whose stem is
// stem. Purchases whose return was sent first may follow in a later batch.
func (m *Model) Batch(stem string, t time.Time, n int) [][]byte {
	m.next = 0
	out := make([][]byte, 0, n)
	for len(out) < n {
		if len(m.later) > 0 && m.rng.IntN(3) == 0 {
			out = append(out, m.later[0])
			m.later = m.later[1:]
			continue
		}
		// Spread event times over the tick, strictly increasing.
		at := t.Add(time.Duration(len(out)) * time.Millisecond)
		for _, line := range m.one(stem, at) {
			if len(out) < n {
				out = append(out, line)
			} else {
				m.later = append(m.later, line)
			}
		}
	}
	for _, l := range out {
		if len(m.history) == 256 {
			m.history = m.history[1:]
		}
		m.history = append(m.history, l)
	}
	return out
}

func (m *Model) line(stem string, at time.Time, t event.Type, payload any) []byte {
	m.seq++
	b, _ := json.Marshal(envelope{EventType: int(t), Payload: payload, SavedAt: event.FormatTime(at),
		Timestamp: event.FormatTime(at.Add(3 * time.Millisecond)), IdempotencyKey: fmt.Sprintf("ingest-%s-%d", stem, m.seq)})
	return b
}

func (m *Model) id(n int) int64 { return int64(1 + m.rng.IntN(n)) }

// one returns the lines of one generated event (two for a return sent
// before its purchase, which then follows later).
func (m *Model) one(stem string, at time.Time) [][]byte {
	shop, good := m.id(m.w.Shops), m.id(m.w.Goods)
	r := m.rng.IntN(100)
	switch {
	case r < 10 || len(m.prices) < m.w.Shops: // price change
		p := money.Cents(100 + m.rng.IntN(9900))
		pl := map[string]any{"shop_id": shop, "good_id": good, "new_price": p}
		if old, ok := m.prices[[2]int64{shop, good}]; ok {
			pl["old_price"] = old
		} else {
			m.priced = append(m.priced, [2]int64{shop, good})
		}
		m.prices[[2]int64{shop, good}] = p
		return [][]byte{m.line(stem, at, event.PriceChange, pl)}
	case r < 27: // restock, mostly of priced goods
		if len(m.prices) > 0 && m.rng.IntN(4) > 0 {
			shop, good = m.pricedPair()
		}
		delta := 5 + m.rng.IntN(45)
		k := [2]int64{shop, good}
		if _, ok := m.stock[k]; !ok && m.prices[k] > 0 {
			m.stocked = append(m.stocked, k)
		}
		m.stock[k] += int64(delta)
		return [][]byte{m.line(stem, at, event.StockChange, map[string]any{"shop_id": shop, "good_id": good,
			"delta_count": delta, "reason": "supplier delivery", "sub_event_type": "restock"})}
	case r < 30: // defect or loss, sometimes more than is in stock
		sub := []string{"defect", "loss"}[m.rng.IntN(2)]
		return [][]byte{m.line(stem, at, event.StockChange, map[string]any{"shop_id": shop, "good_id": good,
			"delta_count": -(1 + m.rng.IntN(8)), "reason": sub + " found in audit", "sub_event_type": sub})}
	case r < 32: // open or close a shop
		m.closed[shop] = !m.closed[shop]
		return [][]byte{m.line(stem, at, event.ShopStatus, map[string]any{"shop_id": shop, "active": !m.closed[shop]})}
	case r < 78: // purchase, mostly of goods in stock
		if len(m.stocked) > 0 && m.rng.IntN(10) > 0 {
			k := m.stocked[m.rng.IntN(len(m.stocked))]
			shop, good = k[0], k[1]
		}
		p := m.purchase(stem, shop, good)
		return [][]byte{m.purchaseLine(stem, at, p)}
	case r < 92: // return of an earlier purchase
		if len(m.recent) == 0 {
			return nil
		}
		p := m.recent[m.rng.IntN(len(m.recent))]
		return [][]byte{m.returnLine(stem, at, p)}
	case r < 96: // a return sent before its purchase
		p := m.purchase(stem, shop, good)
		ret := m.returnLine(stem, at, p)
		m.later = append(m.later, m.purchaseLine(stem, at.Add(time.Millisecond/2), p))
		return [][]byte{ret}
	default: // a verbatim duplicate of a recent line
		if len(m.history) == 0 {
			return nil
		}
		return [][]byte{m.history[m.rng.IntN(len(m.history))]}
	}
}

// pricedPair picks a (shop, good) that has a price.
func (m *Model) pricedPair() (int64, int64) {
	k := m.priced[m.rng.IntN(len(m.priced))]
	return k[0], k[1]
}

func (m *Model) purchase(stem string, shop, good int64) purchase {
	qty := int64(1 + m.rng.IntN(3))
	if m.rng.IntN(20) == 0 {
		qty = int64(40 + m.rng.IntN(60)) // beyond most balances and stocks
	}
	k := [2]int64{shop, good}
	if m.stock[k] >= qty && !m.closed[shop] {
		m.stock[k] -= qty
	}
	// Order ids are the tick's stem followed by a 5-digit sequence: unique
	// across restarts as long as ticks are (MaxBatchSize bounds the sequence).
	var tick int64
	fmt.Sscan(stem, &tick)
	m.next++
	p := purchase{orderID: tick*100_000 + int64(m.next), userID: m.id(m.w.Users), shopID: shop, goodID: good, qty: qty,
		price: m.prices[[2]int64{shop, good}]}
	if len(m.recent) < cap(m.recent) {
		m.recent = append(m.recent, p)
	} else {
		m.recent[m.rng.IntN(len(m.recent))] = p
	}
	return p
}

func (m *Model) purchaseLine(stem string, at time.Time, p purchase) []byte {
	pl := map[string]any{"order_id": p.orderID, "user_id": p.userID, "shop_id": p.shopID, "good_id": p.goodID, "qty": p.qty}
	if p.price > 0 && m.rng.IntN(2) == 0 {
		pl["price_at_order"] = p.price
	}
	return m.line(stem, at, event.Purchase, pl)
}

func (m *Model) returnLine(stem string, at time.Time, p purchase) []byte {
	pl := map[string]any{"order_id": p.orderID, "user_id": p.userID, "good_id": p.goodID, "qty": 1 + m.rng.Int64N(p.qty)}
	if m.rng.IntN(2) == 0 {
		pl["shop_id"] = p.shopID
	}
	if p.price > 0 && m.rng.IntN(4) == 0 {
		pl["refund_amount"] = p.price
	}
	return m.line(stem, at, event.Return, pl)
}

// IntN returns a pseudo-random number in [0, n) from the model's source.
func (m *Model) IntN(n int) int { return m.rng.IntN(n) }
