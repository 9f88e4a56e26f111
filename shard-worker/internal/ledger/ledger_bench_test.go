package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/eventgen"
	"github.com/shopledger/shopledger/internal/shard"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/schema"
)

// prepared generates n events of shard 0 of 2, as the worker would read
// them from its prepared file.
func prepared(tb testing.TB, stem string, n int, seed uint64) []event.Prepared {
	tb.Helper()
	gen := eventgen.New(eventgen.World{Shops: 200, Goods: 500, Users: 5000}, seed)
	var out []event.Prepared
	at := time.Date(2025, 11, 2, 0, 0, 0, 0, time.UTC)
	for i, line := range gen.Batch(stem, at, n) {
		h, err := event.ParseHead(line)
		if err != nil {
			tb.Fatal(err)
		}
		shop := h.ShopID
		if shop == nil {
			continue
		}
		if shard.For(*shop, 2) != 0 {
			continue
		}
		out = append(out, event.Prepare(event.Routed{Src: event.Source{File: stem, Line: i + 1}, Key: h.Key, ShopID: shop, Event: json.RawMessage(line)}))
	}
	return out
}

// BenchmarkApply measures the ledger alone: prepared events of one shard
// applied in batches of 2000 into a real MariaDB with binlog.
func BenchmarkApply(b *testing.B) {
	inst := stacktest.MariaDB(b)
	db := stacktest.Database(b, inst, "shop", schema.Shard)
	l := New(db, Config{Shard: 0, InitialBalance: 100000, PendingDelay: time.Hour})
	evs := prepared(b, "20251102000001", 100_000, 1)
	b.ResetTimer()
	start := time.Now()
	applied := 0
	for i := 0; i < b.N; i++ {
		stem := fmt.Sprintf("2025110200%04d", i)
		for j := range evs {
			evs[j].Src.File = stem
		}
		for k := 0; k < len(evs); k += 2000 {
			if _, err := l.Apply(context.Background(), evs[k:min(k+2000, len(evs))], Progress{File: stem, Lines: k}); err != nil {
				b.Fatal(err)
			}
		}
		applied += len(evs)
	}
	b.ReportMetric(float64(applied)/time.Since(start).Seconds(), "events/s")

}
