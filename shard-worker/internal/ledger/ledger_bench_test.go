package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/eventgen"
	"github.com/shopledger/shopledger/internal/localdb"
	"github.com/shopledger/shopledger/internal/shard"
	"github.com/shopledger/shopledger/internal/sqldb"
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
// (fresh ones every iteration, ~50,000 of a 100,000-event file) applied in
// batches into a real MariaDB with binlog, as the worker's own user. In
// the same run, on the same server, it measures the ledger's limit: the
// same events written as nothing but one `events` row each, with
// multi-row INSERTs, one transaction per batch of the same size (into a
// copy of the table in another database). Ledger and limit take turns
// first, so that a noisy neighbour hurts both alike.
//
// Metrics: events/s (ledger), limit-rows/s, ratio (ledger/limit), and per
// event of each: the server's CPU (srv-ns), this process's CPU (cli-ns),
// binlog bytes, InnoDB row operations, and statements per batch.
//
//	go test -run '^$' -bench 'BenchmarkApply/batch=5000$' -benchtime 3x -count 5 ./shard-worker/internal/ledger/ | benchstat -
func BenchmarkApply(b *testing.B) {
	for _, size := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) { benchmarkApply(b, size) })
	}
}

// applyRun is what one side of the benchmark did.
type applyRun struct {
	events  int
	batches int
	spent   time.Duration
	use     stacktest.Usage
}

func (r *applyRun) add(events, batches int, spent time.Duration, use stacktest.Usage) {
	r.events += events
	r.batches += batches
	r.spent += spent
	if r.use.Status == nil {
		r.use = use
		return
	}
	r.use = r.use.Add(use)
}

func (r *applyRun) rate() float64 { return float64(r.events) / r.spent.Seconds() }

func (r *applyRun) report(b *testing.B, prefix string) {
	n := float64(r.events)
	b.ReportMetric(float64(r.use.ServerCPU.Nanoseconds())/n, prefix+"srv-ns/event")
	b.ReportMetric(float64(r.use.ClientCPU.Nanoseconds())/n, prefix+"cli-ns/event")
	b.ReportMetric(float64(r.use.Status["Binlog_bytes_written"])/n, prefix+"binlog-B/event")
	b.ReportMetric(float64(r.use.RowOps())/n, prefix+"rowops/event")
	b.ReportMetric(float64(r.use.Status["Questions"])/float64(r.batches), prefix+"stmts/batch")
}

func benchmarkApply(b *testing.B, size int) {
	ctx := context.Background()
	inst := stacktest.MariaDB(b)
	root := stacktest.Database(b, inst, "shop", schema.Shard)
	for _, q := range []string{"CREATE DATABASE bench_limit", "CREATE TABLE bench_limit.events LIKE shop.events"} {
		if _, err := root.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	limitDB := stacktest.Config(inst, "bench_limit")
	lim, err := sqldb.Open(limitDB)
	if err != nil {
		b.Fatal(err)
	}
	defer lim.Close()
	l := New(stacktest.As(b, inst, "worker", "shop"), Config{Shard: 0, InitialBalance: 100000, PendingDelay: time.Hour, BulkLoad: true})
	var ledger, limit applyRun
	for i := 0; i < b.N; i++ {
		// Fresh events every iteration: the same ones again would only be
		// recorded as duplicates.
		b.StopTimer()
		stem := fmt.Sprintf("2025110200%04d", i)
		evs := prepared(b, stem, 100_000, uint64(i+1))
		b.StartTimer()
		sides := []func(){
			func() {
				measure(b, inst, root, len(evs), size, &ledger, func(batch []event.Prepared, end int) error {
					_, err := l.Apply(ctx, batch, Progress{File: stem, Lines: end})
					return err
				}, evs)
			},
			func() {
				measure(b, inst, root, len(evs), size, &limit, func(batch []event.Prepared, _ int) error { return insertEvents(ctx, lim, batch) }, evs)
			},
		}
		if i%2 == 1 {
			sides[0], sides[1] = sides[1], sides[0]
		}
		for _, side := range sides {
			side()
		}
	}
	b.ReportMetric(ledger.rate(), "events/s")
	b.ReportMetric(limit.rate(), "limit-rows/s")
	b.ReportMetric(ledger.rate()/limit.rate(), "ratio")
	ledger.report(b, "")
	limit.report(b, "limit-")
}

// measure runs apply over evs in batches of size and adds what it took to
// run.
func measure(b *testing.B, inst *localdb.Instance, root *sql.DB, n, size int, run *applyRun, apply func([]event.Prepared, int) error, evs []event.Prepared) {
	ctx := context.Background()
	before, err := stacktest.Measure(ctx, inst, root)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	batches := 0
	for k := 0; k < len(evs); k += size {
		end := min(k+size, len(evs))
		if err := apply(evs[k:end], end); err != nil {
			b.Fatal(err)
		}
		batches++
	}
	spent := time.Since(start)
	after, err := stacktest.Measure(ctx, inst, root)
	if err != nil {
		b.Fatal(err)
	}
	run.add(n, batches, spent, after.Sub(before))
}

// insertEvents is the limit: one events row per event, as the ledger
// writes it, with multi-row INSERTs in one transaction.
func insertEvents(ctx context.Context, db *sql.DB, evs []event.Prepared) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	rows := sqldb.Bulk{Head: `INSERT INTO events (event_key, event_type, shop_id, user_id, order_id, good_id, timestamp, shard,
		status, reason, source_file, source_line) VALUES `, Cols: 12}
	for _, e := range evs {
		rows.Add(e.Key, int(e.Type), e.ShopID, e.UserID, e.OrderID, e.GoodID, e.TS, 0, StatusApplied, nil, e.Src.File, e.Src.Line)
	}
	if err := rows.Exec(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}
