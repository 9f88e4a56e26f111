package store

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/cdc/cdctest"
	"github.com/shopledger/shopledger/internal/consume"
	"github.com/shopledger/shopledger/internal/consume/consumetest"
	"github.com/shopledger/shopledger/internal/localdb"
	"github.com/shopledger/shopledger/internal/money"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/schema"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newStore(t testing.TB) (*Store, *sql.DB) { return newStoreOn(t, stacktest.MariaDB(t)) }

// newStoreOn returns a store over a fresh cache_db on inst, connected as
// the cache service's own user.
func newStoreOn(t testing.TB, inst *localdb.Instance) (*Store, *sql.DB) {
	stacktest.Database(t, inst, "cache_db", schema.Cache)
	db := stacktest.As(t, inst, "cache", "cache_db")
	return New(db, quiet), db
}

// subject is cache under the consumers' conformance suite: its state is
// every (shop, good)'s stock and price, every shop's open/closed, and the
// events rows counted per shop, shard, type and status, from the shards'
// shop, shop_state and events rows.
var subject = consumetest.Subject[*Change]{
	Tables: Tables,
	Topic:  func(table string) string { return "shop." + table },
	PK: func(table string, r consumetest.Row) string {
		switch table {
		case "shop":
			return fmt.Sprint(r["id"], "/", r["good_id"])
		case "shop_state":
			return fmt.Sprint(r["shop_id"])
		}
		return fmt.Sprint(r["id"])
	},
	Key: func(table string, r consumetest.Row) string {
		if table == "shop" {
			return fmt.Sprintf(`{"id":%v}`, r["id"])
		}
		return fmt.Sprintf(`{"shop_id":%v}`, r["shop_id"])
	},
	New: func(t testing.TB, inst *localdb.Instance) (consume.Handler[*Change], *sql.DB) {
		s, db := newStoreOn(t, inst)
		return s, db
	},
	Mutate: mutate,
	Want:   want,
	Got:    func(t testing.TB, db *sql.DB) string { return dump(t, db) },
}

var statuses = []string{"applied", "rejected", "duplicate", "pending"}

// shopsPerShard is how many shops each shard's changes spread over.
var shopsPerShard = 8

// mutate makes a transaction of a shard's worker: stock and price of a
// good, a shop opened or closed, events rows, a pending return settled.
func mutate(r *rand.Rand, s *consumetest.Shards, shard int) []consumetest.Mutation {
	shop := int64(shard + 2*r.IntN(shopsPerShard)) // shops of this shard: shop % 2 == shard
	var out []consumetest.Mutation
	switch r.IntN(4) {
	case 0, 1:
		after := consumetest.Row{"id": shop, "good_id": int64(1 + r.IntN(5)), "count": int64(r.IntN(50)), "active": true,
			"price": money.Cents(r.IntN(10_000)).String()}
		pk := fmt.Sprint(shop, "/", after["good_id"])
		out = append(out, consumetest.Mutation{Table: "shop", Before: s.Get(shard, "shop", pk), After: after})
	case 2:
		out = append(out, consumetest.Mutation{Table: "shop_state", Before: s.Get(shard, "shop_state", fmt.Sprint(shop)),
			After: consumetest.Row{"shop_id": shop, "active": r.IntN(2) == 1}})
	case 3:
		ev := consumetest.Row{"id": s.NextID(shard, "events"), "event_type": r.IntN(5), "shop_id": shop, "status": statuses[r.IntN(4)]}
		if r.IntN(10) == 0 {
			ev["shop_id"], ev["event_type"], ev["status"] = nil, 3, "pending"
		}
		out = append(out, consumetest.Mutation{Table: "events", After: ev})
	}
	// Settle one of the recent returns if it is pending.
	last := s.NextID(shard, "events")
	if row := s.Get(shard, "events", fmt.Sprint(last-1-int64(r.IntN(20)))); row != nil && row["status"] == "pending" {
		settled := maps.Clone(row)
		settled["status"] = statuses[r.IntN(2)]
		out = append(out, consumetest.Mutation{Table: "events", Before: row, After: settled})
	}
	return out
}

// want renders the state the shards' rows call for, as dump renders the
// cache's.
func want(s *consumetest.Shards) string {
	var lines []string
	counts := map[string]int64{}
	for shard := range s.N() {
		for _, r := range s.Rows(shard, "shop") {
			lines = append(lines, fmt.Sprintf("stock %v %v %v %v", r["id"], r["good_id"], r["count"], r["price"]))
		}
		for _, r := range s.Rows(shard, "shop_state") {
			lines = append(lines, fmt.Sprintf("status %v %v", r["shop_id"], r["active"]))
		}
		for _, r := range s.Rows(shard, "events") {
			shop := r["shop_id"]
			if shop == nil {
				shop = NoShop
			}
			counts[fmt.Sprintf("count %v %d %v %v", shop, shard, r["event_type"], r["status"])]++
		}
	}
	for k, n := range counts {
		lines = append(lines, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func dump(t testing.TB, db *sql.DB) string {
	t.Helper()
	var lines []string
	for _, q := range []string{"SELECT CONCAT_WS(' ', 'stock', shop_id, good_id, count, price) FROM stock",
		"SELECT CONCAT_WS(' ', 'status', shop_id, IF(active, 'true', 'false')) FROM shop_status",
		"SELECT CONCAT_WS(' ', 'count', shop_id, shard, event_type, status, n) FROM event_count WHERE n <> 0"} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, s)
		}
		rows.Close()
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func TestConformance(t *testing.T) { consumetest.Run(t, subject) }

// Changes that cannot be applied are dead letters with their reason; the
// rest of the batch is applied.
func TestDecodeRefusesWhatCannotBeApplied(t *testing.T) {
	s, db := newStore(t)
	ok := cdctest.Change{Shard: 1, Table: "shop_state", Op: "c", Pos: 60, After: map[string]any{"shop_id": 3, "active": true}}
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
	res, err := consume.Apply(context.Background(), db, s, consume.Decode(s, msgs), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 1 || res.Dead != len(bad) {
		t.Errorf("result %+v, want 1 applied, %d dead letters", res, len(bad))
	}
	var active bool
	if err := db.QueryRow("SELECT active FROM shop_status WHERE shop_id = 3").Scan(&active); err != nil || !active {
		t.Errorf("shop 3 active = %v, %v", active, err)
	}
}
