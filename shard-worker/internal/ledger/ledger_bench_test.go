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
// applied in batches of several sizes into a real MariaDB with binlog.
func BenchmarkApply(b *testing.B) {
	for _, size := range []int{1000, 2000, 5000, 10000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) { benchmarkApply(b, size) })
	}
}

func benchmarkApply(b *testing.B, size int) {
	inst := stacktest.MariaDB(b)
	db := stacktest.Database(b, inst, "shop", schema.Shard)
	l := New(db, Config{Shard: 0, InitialBalance: 100000, PendingDelay: time.Hour})
	var spent time.Duration
	applied := 0
	for i := 0; i < b.N; i++ {
		// Fresh events every iteration: the same ones again would only be
		// recorded as duplicates.
		b.StopTimer()
		stem := fmt.Sprintf("2025110200%04d", i)
		evs := prepared(b, stem, 100_000, uint64(i+1))
		b.StartTimer()
		start := time.Now()
		for k := 0; k < len(evs); k += size {
			end := min(k+size, len(evs))
			if _, err := l.Apply(context.Background(), evs[k:end], Progress{File: stem, Lines: end}); err != nil {
				b.Fatal(err)
			}
		}
		spent += time.Since(start)
		applied += len(evs)
	}
	b.ReportMetric(float64(applied)/spent.Seconds(), "events/s")
}
