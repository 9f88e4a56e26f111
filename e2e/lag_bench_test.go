package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/shopledger/shopledger/internal/localstack"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// BenchmarkBalanceLag measures end-to-end lag under a steady load: account
// transactions committed on two shards at 5,000 rows/s in all (a
// transaction of 25 rows every 10 ms per shard, what a worker commits)
// for SHOPLEDGER_LAG_DURATION (default 30s), captured by the
// cdc-producers, published to the embedded broker and applied by balance.
// The lag of a row is from its insert on the shard (created_at) to its
// insert in balance_db (applied_transaction.applied_at), both inside their
// transactions, whose commits add a few milliseconds each.
//
// Run: go test -run '^$' -bench BenchmarkBalanceLag -benchtime 1x ./e2e
func BenchmarkBalanceLag(b *testing.B) {
	d := 30 * time.Second
	if v := os.Getenv("SHOPLEDGER_LAG_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			b.Fatal(err)
		}
	}
	const perTx, every = 25, 10 * time.Millisecond
	for range b.N {
		s := startStack(b, 2, []string{"cdc"})
		balance, err := sqldb.Open(sqldb.Config{Addr: s.layout.ControlAddr(), User: "root", Database: "balance_db"})
		if err != nil {
			b.Fatal(err)
		}
		defer balance.Close()
		wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
		err = localstack.WaitHTTP(wctx, "http://127.0.0.1:"+s.env("balance", "SERVER_PORT")+"/ready")
		wcancel()
		if err != nil {
			b.Fatal(err)
		}

		ctx, cancel := context.WithTimeout(context.Background(), d)
		var wg sync.WaitGroup
		rows := make([]int, len(s.shards))
		for i, db := range s.shards {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rows[i] = steadyWrites(ctx, b, db, i, perTx, every)
			}()
		}
		wg.Wait()
		cancel()
		total := rows[0] + rows[1]
		deadline := time.Now().Add(2 * time.Minute)
		for {
			var n int
			balance.QueryRow("SELECT COUNT(*) FROM applied_transaction").Scan(&n)
			if n >= total {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("balance applied %d of %d transactions", n, total)
			}
			time.Sleep(100 * time.Millisecond)
		}
		h := hdrhistogram.New(1, 600_000, 3) // milliseconds, up to 10 min
		for i, db := range s.shards {
			created := map[int64]time.Time{}
			err := sqldb.Each(context.Background(), db, "SELECT id, created_at FROM account_transaction WHERE reason = 'lag-bench'", func(r *sql.Rows) error {
				var id int64
				var t time.Time
				err := r.Scan(&id, &t)
				created[id] = t
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			err = sqldb.Each(context.Background(), balance, "SELECT id, applied_at FROM applied_transaction WHERE shard = ?", func(r *sql.Rows) error {
				var id int64
				var t time.Time
				if err := r.Scan(&id, &t); err != nil {
					return err
				}
				if c, ok := created[id]; ok {
					return h.RecordValue(max(t.Sub(c).Milliseconds(), 1))
				}
				return nil
			}, i)
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(total)/d.Seconds(), "rows/s")
		b.ReportMetric(float64(h.ValueAtQuantile(50)), "p50-ms")
		b.ReportMetric(float64(h.ValueAtQuantile(99)), "p99-ms")
		b.ReportMetric(float64(h.Max()), "max-ms")
		b.Logf("%d transactions in %s; lag p50 %d ms, p90 %d ms, p99 %d ms, max %d ms", h.TotalCount(), d,
			h.ValueAtQuantile(50), h.ValueAtQuantile(90), h.ValueAtQuantile(99), h.Max())
	}
}

// steadyWrites commits perTx account transactions on a shard every tick
// until ctx ends and returns how many it wrote.
func steadyWrites(ctx context.Context, b *testing.B, db *sql.DB, shard, perTx int, every time.Duration) int {
	tick := time.NewTicker(every)
	defer tick.Stop()
	n := 0
	var q strings.Builder
	for {
		select {
		case <-ctx.Done():
			return n
		case <-tick.C:
		}
		q.Reset()
		q.WriteString("INSERT INTO account_transaction (user_id, amount, type, reason, idempotency_key) VALUES ")
		for j := range perTx {
			if j > 0 {
				q.WriteByte(',')
			}
			fmt.Fprintf(&q, "(%d, 1.00, 'credit', 'lag-bench', 'lag-%d-%d')", (n+j)%1000+1, shard, n+j)
		}
		if _, err := db.Exec(q.String()); err != nil {
			b.Error(err)
			return n
		}
		n += perTx
	}
}
