package store

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/cdc/cdctest"
	"github.com/shopledger/shopledger/internal/consume"
	"github.com/shopledger/shopledger/internal/money"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/schema"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var topics = []string{"shop.shop", "shop.shop_state", "shop.events"}

// history is a generated sequence of shop, shop_state and events changes on
// two shards, as the cdc-producer would publish them, and the state it
// must end in.
type history struct {
	msgs    []kafka.Message
	stock   map[[2]int64][2]string // (shop, good) -> count, price
	active  map[int64]bool
	counts  map[string]int64 // "shop/shard/type/status"
	pending map[int64]int64
}

func generate(n, shops int, seed uint64) *history {
	r := rand.New(rand.NewPCG(seed, 9))
	h := &history{stock: map[[2]int64][2]string{}, active: map[int64]bool{}, counts: map[string]int64{}, pending: map[int64]int64{}}
	rows := map[[2]int64]map[string]any{}
	var pendingRows []map[string]any
	pos := [2]uint32{1000, 1000}
	add := func(shard int, table, op string, before, after map[string]any) {
		pos[shard] += 100
		c := cdctest.Change{Shard: shard, Table: table, Op: op, Pos: pos[shard], Before: before, After: after}
		h.msgs = append(h.msgs, cdctest.Messages("shop."+table, []cdctest.Change{c})...)
	}
	count := func(ev map[string]any, d int64) {
		shop := ev["shop_id"]
		if shop == nil {
			shop = NoShop
		}
		h.counts[fmt.Sprintf("%v/%v/%v/%v", shop, ev["shard"], ev["event_type"], ev["status"])] += d
	}
	for i := range n {
		shop := int64(r.IntN(shops) + 1)
		shard := int(shop % 2)
		switch r.IntN(4) {
		case 0, 1: // stock or price of a good
			k := [2]int64{shop, int64(r.IntN(5) + 1)}
			after := map[string]any{"id": k[0], "good_id": k[1], "count": int64(r.IntN(50)), "active": 1,
				"price": money.Cents(r.IntN(10_000)).String()}
			if old := rows[k]; old == nil {
				add(shard, "shop", "c", nil, after)
			} else {
				add(shard, "shop", "u", old, after)
			}
			rows[k] = after
			h.stock[k] = [2]string{fmt.Sprint(after["count"]), after["price"].(string)}
		case 2: // open or close
			a := r.IntN(2) == 1
			add(shard, "shop_state", "c", nil, map[string]any{"shop_id": shop, "active": map[bool]int{true: 1}[a]})
			h.active[shop] = a
		case 3: // an events row; a pending one is settled later
			ev := map[string]any{"id": i, "event_type": r.IntN(5), "shop_id": shop, "shard": shard, "status": []string{"applied", "rejected", "duplicate", "pending"}[r.IntN(4)]}
			if r.IntN(10) == 0 {
				ev["shop_id"], ev["event_type"], ev["status"] = nil, 3, "pending"
			}
			add(shard, "events", "c", nil, ev)
			count(ev, 1)
			if ev["status"] == "pending" {
				pendingRows = append(pendingRows, ev)
			}
		}
		if len(pendingRows) > 0 && r.IntN(8) == 0 {
			old := pendingRows[0]
			pendingRows = pendingRows[1:]
			settled := map[string]any{}
			for k, v := range old {
				settled[k] = v
			}
			settled["status"] = []string{"applied", "rejected"}[r.IntN(2)]
			add(old["shard"].(int), "events", "u", old, settled)
			count(old, -1)
			count(settled, 1)
		}
	}
	return h
}

// check fails t unless the store holds the history's final state.
func (h *history) check(t *testing.T, db *sql.DB) {
	t.Helper()
	got := map[[2]int64][2]string{}
	rows, err := db.Query("SELECT shop_id, good_id, count, price FROM stock")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k [2]int64
		var v [2]string
		rows.Scan(&k[0], &k[1], &v[0], &v[1])
		got[k] = v
	}
	rows.Close()
	if fmt.Sprint(got) != fmt.Sprint(h.stock) {
		t.Errorf("stock = %v\nwant %v", got, h.stock)
	}
	active := map[int64]bool{}
	rows, _ = db.Query("SELECT shop_id, active FROM shop_status")
	for rows.Next() {
		var s int64
		var a bool
		rows.Scan(&s, &a)
		active[s] = a
	}
	rows.Close()
	if fmt.Sprint(active) != fmt.Sprint(h.active) {
		t.Errorf("open/closed = %v\nwant %v", active, h.active)
	}
	counts := map[string]int64{}
	rows, _ = db.Query("SELECT CONCAT_WS('/', shop_id, shard, event_type, status), n FROM event_count WHERE n <> 0")
	for rows.Next() {
		var k string
		var n int64
		rows.Scan(&k, &n)
		counts[k] = n
	}
	rows.Close()
	want := map[string]int64{}
	for k, n := range h.counts {
		if n != 0 {
			want[k] = n
		}
	}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("event counts = %v\nwant %v", counts, want)
	}
}

func newStore(t *testing.T) (*Store, *sql.DB) {
	inst := stacktest.MariaDB(t)
	stacktest.Database(t, inst, "cache_db", schema.Cache)
	db := stacktest.As(t, inst, "cache", "cache_db")
	return New(db, quiet), db
}

// In order, replayed with repeats, or shuffled into an empty database: the
// same final state; last-writer values follow source positions, not
// arrival order.
func TestApplyIsIdempotentAndOrderFree(t *testing.T) {
	h := generate(4000, 12, 1)
	ctx := context.Background()
	s, db := newStore(t)
	for start := 0; start < len(h.msgs); start += 600 {
		res, err := s.Apply(ctx, h.msgs[start:min(start+600, len(h.msgs))])
		if err != nil {
			t.Fatal(err)
		}
		if res.Invalid != 0 || res.Duplicates != 0 {
			t.Fatalf("first delivery: %+v", res)
		}
	}
	h.check(t, db)
	again := append(append([]kafka.Message(nil), h.msgs...), h.msgs...)
	rand.New(rand.NewPCG(2, 2)).Shuffle(len(again), func(i, j int) { again[i], again[j] = again[j], again[i] })
	res, err := s.Apply(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 0 {
		t.Errorf("replay applied %d changes, want none", res.Applied)
	}
	h.check(t, db)

	s2, db2 := newStore(t)
	shuffled := append([]kafka.Message(nil), h.msgs...)
	rand.New(rand.NewPCG(3, 3)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for start := 0; start < len(shuffled); start += 250 {
		if _, err := s2.Apply(ctx, shuffled[start:min(start+250, len(shuffled))]); err != nil {
			t.Fatal(err)
		}
	}
	h.check(t, db2)
}

// Two members of one group share three topics published shuffled over
// their partitions; a reset of the group's offsets and a second pass
// change nothing.
func TestGroupSharesShuffledTopicsAndResetChangesNothing(t *testing.T) {
	h := generate(5000, 12, 4)
	s, db := newStore(t)
	brokers := cdctest.Broker(t, 3, topics...)
	r := rand.New(rand.NewPCG(5, 5))
	msgs := append([]kafka.Message(nil), h.msgs...)
	r.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	cdctest.Publish(t, brokers, msgs, func(int) int { return r.IntN(3) })
	g := cdctest.NewGroup(t, brokers, "cache-test", topics, s.Stages())
	g.Start()
	g.Start()
	g.WaitHandled(len(msgs), 2*time.Minute)
	g.Stop()
	h.check(t, db)
	before := dump(t, db)
	if _, err := consume.ResetOffsets(context.Background(), brokers, "cache-test", topics); err != nil {
		t.Fatal(err)
	}
	g2 := cdctest.NewGroup(t, brokers, "cache-test", topics, s.Stages())
	g2.Start()
	g2.WaitHandled(len(msgs), 2*time.Minute)
	g2.Stop()
	if after := dump(t, db); after != before {
		t.Errorf("state changed after consuming everything again:\nbefore %s\nafter  %s", before, after)
	}
}

// Changes that cannot be applied are counted invalid; the rest of the batch
// is applied.
func TestApplySkipsInvalidChanges(t *testing.T) {
	s, db := newStore(t)
	ok := cdctest.Change{Shard: 1, Table: "shop_state", Op: "c", Pos: 10, After: map[string]any{"shop_id": 3, "active": 1}}
	bad := []cdctest.Change{
		{Shard: 1, Table: "shop_state", Op: "d", Pos: 20, Before: map[string]any{"shop_id": 3, "active": 1}},
		{Shard: 1, Table: "shop", Op: "c", Pos: 30, After: map[string]any{"id": 3, "count": 1}},
		{Shard: 1, Table: "events", Op: "c", Pos: 40, After: map[string]any{"shop_id": 3, "status": "applied"}},
		{Shard: 1, Table: "user", Op: "c", Pos: 50, After: map[string]any{"id": 3}},
	}
	var msgs []kafka.Message
	for _, c := range append(bad, ok) {
		msgs = append(msgs, cdctest.Messages("shop."+c.Table, []cdctest.Change{c})...)
	}
	res, err := s.Apply(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 1 || res.Invalid != len(bad) {
		t.Errorf("result %+v, want 1 applied, %d invalid", res, len(bad))
	}
	var active bool
	if err := db.QueryRow("SELECT active FROM shop_status WHERE shop_id = 3").Scan(&active); err != nil || !active {
		t.Errorf("shop 3 active = %v, %v", active, err)
	}
}

func dump(t *testing.T, db *sql.DB) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{"SELECT CONCAT_WS(' ', shop_id, good_id, count, price, price_version) FROM stock ORDER BY shop_id, good_id",
		"SELECT CONCAT_WS(' ', shop_id, active, active_version) FROM shop_status ORDER BY shop_id",
		"SELECT CONCAT_WS(' ', shop_id, shard, event_type, status, n) FROM event_count ORDER BY 1"} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			rows.Scan(&s)
			b.WriteString(s + ";")
		}
		rows.Close()
	}
	return b.String()
}
