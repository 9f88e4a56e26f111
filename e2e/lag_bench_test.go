package e2e

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/internal/topics"
)

// maxLagTxRows bounds the account transactions of one shard transaction of
// the lag benchmark: they must be one rows event (binlog_row_event_max_size,
// 8 KiB, holds ~130 of these rows), so that a change's source row number is
// its place in the INSERT. checkOneRowsEvent makes sure.
const maxLagTxRows = 100

// lagUsers is how many users the benchmark's transactions spread over.
const lagUsers = 1000

// BenchmarkBalanceLag measures end-to-end lag under a steady load: account
// transactions committed on two shards at SHOPLEDGER_LAG_RATE rows/s in all
// (default 20,000; transactions of 25 rows, each shard its half, paced by a
// ticker) for SHOPLEDGER_LAG_DURATION (default 30s), captured by the
// cdc-producers, published to the embedded broker (in this process) and
// applied by balance, all running as in `make run`.
//
// The lag of a transaction is from its commit on the shard (its INSERT,
// autocommitted, returned) to its effect being visible in balance_db. A
// poller reads balance's watermarks (consumer_watermark, committed in the
// transaction that changes the balances) every 2 ms: a transaction is
// visible once every partition its rows went to has a watermark at or past
// its last row there (its GTID, from @@last_gtid, and the row's place in
// the INSERT). The partition of each user is learnt from a warm-up
// transaction (balance.kafka_partition). The poll interval is the
// resolution; a poll's time is when it returned, so lags are rounded up.
//
// Metrics: rows/s achieved (below the rate asked for when the writers
// could not keep up: a saturated machine shows there), p50-ms, p90-ms,
// p99-ms, max-ms; where the lag is spent as balance sees it: mean time from
// the producer's Kafka write to the batch applied (consumer-delay-ms),
// mean batch apply time (batch-ms) and changes per batch (rows/batch); and
// CPU per row of every process on the path (producer-ns/row/shardN,
// balance-ns/row, srv-ns/row/shardN for the shard servers,
// control-srv-ns/row for balance_db's server, bench-ns/row for this
// process: broker, writers and poller).
//
// With SHOPLEDGER_BENCH_PROFILE=dir it writes CPU profiles of both
// cdc-producers, balance and this process over the steady load (its first
// SHOPLEDGER_BENCH_PROFILE_SECONDS, default 20, at most the duration).
//
//	make bench-lag RATE=20000 DURATION=30s
//	SHOPLEDGER_BENCH_PROFILE=/tmp/prof make bench-lag; go tool pprof -top /tmp/prof/cdc-producer-0.cpu
func BenchmarkBalanceLag(b *testing.B) {
	rate, d, txRows := lagLoad(b)
	prof := stacktest.BenchProfiling(b, 20)
	prof.Seconds = max(1, min(prof.Seconds, int(d.Seconds())))
	env := prof.Env()
	const shards = 2
	every := time.Duration(float64(time.Second) * float64(txRows) * shards / float64(rate))
	for range b.N {
		b.StopTimer()
		s := startStack(b, shards, []string{"cdc"}, env...)
		balance, err := sqldb.Open(sqldb.Config{Addr: s.layout.ControlAddr(), User: "root", Database: "balance_db"})
		if err != nil {
			b.Fatal(err)
		}
		defer balance.Close()
		s.waitReady("balance")
		parts := learnPartitions(b, s, balance)

		from := binlogEnds(b, s)
		pl := startPoller(balance, 2*time.Millisecond)
		use := s.usage()
		cpu0 := selfCPU(b)
		var profiles sync.WaitGroup
		if prof.Dir != "" {
			profiles.Go(func() { profileSelf(b, filepath.Join(prof.Dir, "bench.cpu"), time.Duration(prof.Seconds)*time.Second) })
			for name, port := range s.lagProfiled() {
				profiles.Go(func() {
					prof.Fetch(b, port, prof.CPU(), name+".cpu")
				})
			}
		}
		b.StartTimer()
		ctx, cancel := context.WithTimeout(context.Background(), d)
		var wg sync.WaitGroup
		txs := make([][]lagTx, shards)
		for i, db := range s.shards {
			wg.Go(func() { txs[i] = lagWrites(ctx, b, db, i, txRows, every, parts) })
		}
		wg.Wait()
		cancel()
		b.StopTimer()
		checkOneRowsEvent(b, s, from)
		pl.waitFor(b, txs, 2*time.Minute+2*d)
		pl.stop()
		spent := s.usage().sub(use)
		bench := selfCPU(b) - cpu0
		reportLag(b, s, pl, txs, rate, txRows, d, spent, bench)
		if prof.Dir != "" {
			profiles.Wait()
			b.Logf("profiles in %s", prof.Dir)
		}
	}
}

// lagLoad reads the load of the lag benchmark from the environment: the
// rate in changes per second, the duration, and the changes per
// transaction.
func lagLoad(b *testing.B) (rate int, d time.Duration, txRows int) {
	rate, d, txRows = 20_000, 30*time.Second, 25
	if v := os.Getenv("SHOPLEDGER_LAG_TX_ROWS"); v != "" {
		var err error
		if txRows, err = strconv.Atoi(v); err != nil || txRows < 1 || txRows > maxLagTxRows {
			b.Fatalf("SHOPLEDGER_LAG_TX_ROWS=%q: want rows per transaction, 1 to %d", v, maxLagTxRows)
		}
	}
	if v := os.Getenv("SHOPLEDGER_LAG_RATE"); v != "" {
		var err error
		if rate, err = strconv.Atoi(v); err != nil || rate < 1 {
			b.Fatalf("SHOPLEDGER_LAG_RATE=%q: want changes per second, a positive integer", v)
		}
	}
	if v := os.Getenv("SHOPLEDGER_LAG_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 {
			b.Fatalf("SHOPLEDGER_LAG_DURATION=%q: want a positive duration", v)
		}
	}
	return rate, d, txRows
}

// reportLag reports the lag of every transaction in txs as pl saw it, the
// rate achieved, balance's own view of its batches and the CPU every
// process on the path spent per change.
func reportLag(b *testing.B, s *stack, pl *poller, txs [][]lagTx, rate, txRows int, d time.Duration, spent stackUsage, bench time.Duration) {
	rows := 0
	h := hdrhistogram.New(1, 600_000_000, 3) // microseconds, up to 10 min
	for shard, list := range txs {
		rows += len(list) * txRows
		for _, t := range list {
			seen := pl.visible(shard, t)
			if err := h.RecordValue(max(seen.Sub(t.committed).Microseconds(), 1)); err != nil {
				b.Fatal(err)
			}
		}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	b.ReportMetric(float64(rows)/d.Seconds(), "rows/s")
	b.ReportMetric(ms(h.ValueAtQuantile(50)), "p50-ms")
	b.ReportMetric(ms(h.ValueAtQuantile(90)), "p90-ms")
	b.ReportMetric(ms(h.ValueAtQuantile(99)), "p99-ms")
	b.ReportMetric(ms(h.Max()), "max-ms")
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(rows) }
	for sh := range txs {
		b.ReportMetric(per(spent.procs[fmt.Sprintf("cdc-producer-%d", sh)]), fmt.Sprintf("producer-ns/row/shard%d", sh))
		b.ReportMetric(per(spent.shards[sh].ServerCPU), fmt.Sprintf("srv-ns/row/shard%d", sh))
	}
	b.ReportMetric(per(spent.procs["balance"]), "balance-ns/row")
	b.ReportMetric(per(spent.control.ServerCPU), "control-srv-ns/row")
	b.ReportMetric(per(bench), "bench-ns/row")
	m := scrape(b, s.ep.BalancePort)
	if n := m.sum("shopledger_consumer_delay_seconds_count", ""); n > 0 {
		b.ReportMetric(1000*m.sum("shopledger_consumer_delay_seconds_sum", "")/n, "consumer-delay-ms")
	}
	if n := m.sum("shopledger_consumer_batch_duration_seconds_count", ""); n > 0 {
		b.ReportMetric(1000*m.sum("shopledger_consumer_batch_duration_seconds_sum", "")/n, "batch-ms")
		b.ReportMetric(m.sum("shopledger_consumer_changes_total", `result="applied"`)/n, "rows/batch")
	}
	b.Logf("asked %d rows/s for %s: %d transactions of %d rows committed (%.0f rows/s); lag p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms",
		rate, d, rows/txRows, txRows, float64(rows)/d.Seconds(), ms(h.ValueAtQuantile(50)), ms(h.ValueAtQuantile(90)),
		ms(h.ValueAtQuantile(99)), ms(h.Max()))
}

// lagTx is one transaction the benchmark committed on a shard.
type lagTx struct {
	gtid      int64       // sequence number of its GTID
	last      map[int]int // its last row (place in the INSERT) per partition
	committed time.Time   // when its autocommitted INSERT returned
}

// learnPartitions commits one transaction of every user on each shard,
// waits until balance has applied them and returns each user's partition.
func learnPartitions(b *testing.B, s *stack, balance *sql.DB) map[int]int {
	var q strings.Builder
	q.WriteString("INSERT INTO account_transaction (user_id, amount, type, reason, idempotency_key) VALUES ")
	for u := 1; u <= lagUsers; u++ {
		if u > 1 {
			q.WriteByte(',')
		}
		fmt.Fprintf(&q, "(%d, 1.00, 'credit', 'lag-warm-up', UUID())", u)
	}
	for i, db := range s.shards {
		if _, err := db.Exec(q.String()); err != nil {
			b.Fatalf("warm-up on shard %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var n int
		err := balance.QueryRow("SELECT COUNT(*) FROM balance WHERE tx_count = ?", len(s.shards)).Scan(&n)
		if err == nil && n == lagUsers {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("warm-up: balance has %d of %d users (err %v)", n, lagUsers, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	parts := map[int]int{}
	err := sqldb.Each(context.Background(), balance, "SELECT user_id, kafka_partition FROM balance", func(r *sql.Rows) error {
		var u, p int
		err := r.Scan(&u, &p)
		parts[u] = p
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return parts
}

// lagWrites commits a transaction of txRows account transactions on a
// shard every tick until ctx ends (a tick missed while one commits is
// dropped, so a writer that cannot keep up writes less) and returns them.
func lagWrites(ctx context.Context, b *testing.B, db *sql.DB, shard, txRows int, every time.Duration, parts map[int]int) []lagTx {
	conn, err := db.Conn(context.Background())
	if err != nil {
		b.Error(err)
		return nil
	}
	defer conn.Close()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var out []lagTx
	var q strings.Builder
	n := 0
	for {
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
		}
		q.Reset()
		q.WriteString("INSERT INTO account_transaction (user_id, amount, type, reason, idempotency_key) VALUES ")
		t := lagTx{last: map[int]int{}}
		for j := range txRows {
			if j > 0 {
				q.WriteByte(',')
			}
			u := (n+j)%lagUsers + 1
			t.last[parts[u]] = j
			fmt.Fprintf(&q, "(%d, 1.00, 'credit', 'lag-bench', 'lag-%d-%d')", u, shard, n+j)
		}
		if _, err := conn.ExecContext(context.Background(), q.String()); err != nil {
			b.Error(err)
			return out
		}
		t.committed = time.Now()
		var gtid string
		if err := conn.QueryRowContext(context.Background(), "SELECT @@last_gtid").Scan(&gtid); err != nil {
			b.Error(err)
			return out
		}
		if t.gtid, err = gtidSeq(gtid); err != nil {
			b.Error(err)
			return out
		}
		out = append(out, t)
		n += txRows
	}
}

// binlogEnds returns each shard's binlog file and position now.
func binlogEnds(b *testing.B, s *stack) [][2]string {
	var out [][2]string
	for i, db := range s.shards {
		var file, pos string
		if err := db.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, new(any), new(any)); err != nil {
			b.Fatalf("shard %d: %v", i, err)
		}
		out = append(out, [2]string{file, pos})
	}
	return out
}

// checkOneRowsEvent fails the benchmark unless the first transactions
// written on each shard from its position in from were one rows event each,
// as the lag's computation takes them to be.
func checkOneRowsEvent(b *testing.B, s *stack, from [][2]string) {
	for i, db := range s.shards {
		rows, err := db.Query(fmt.Sprintf("SHOW BINLOG EVENTS IN '%s' FROM %s LIMIT 200", from[i][0], from[i][1]))
		if err != nil {
			b.Fatalf("shard %d: %v", i, err)
		}
		in, events, txs := false, 0, 0
		for rows.Next() {
			var typ string
			var skip any
			if err := rows.Scan(&skip, &skip, &typ, &skip, &skip, &skip); err != nil {
				b.Fatal(err)
			}
			switch {
			case typ == "Gtid":
				in, events = true, 0
			case strings.HasPrefix(typ, "Write_rows") && in:
				events++
			case typ == "Xid" && in:
				if events != 1 {
					b.Fatalf("shard %d: a transaction of the benchmark was %d rows events, not one: fewer rows per transaction", i, events)
				}
				in, txs = false, txs+1
			}
		}
		rows.Close()
		if txs == 0 {
			b.Fatalf("shard %d: no transaction of the benchmark in its binlog from %s:%s", i, from[i][0], from[i][1])
		}
	}
}

// gtidSeq is the sequence number of a MariaDB GTID (domain-server-seq).
func gtidSeq(gtid string) (int64, error) {
	i := strings.LastIndexByte(gtid, '-')
	n, err := strconv.ParseInt(gtid[i+1:], 10, 64)
	if i < 0 || err != nil {
		return 0, fmt.Errorf("GTID %q is not domain-server-seq", gtid)
	}
	return n, nil
}

// mark is a watermark: a change's GTID sequence number and row.
type mark struct{ gtid, row int64 }

func (m mark) reached(n mark) bool { return m.gtid > n.gtid || m.gtid == n.gtid && m.row >= n.row }

// sighting is a watermark a poll saw, and when the poll returned.
type sighting struct {
	at time.Time
	mark
}

// poller reads balance's watermarks of the account_transaction topic over
// and over and keeps every new one, per (shard, partition).
type poller struct {
	mu     sync.Mutex
	seen   map[[2]int][]sighting
	cancel context.CancelFunc
	done   chan struct{}
}

func startPoller(db *sql.DB, every time.Duration) *poller {
	ctx, cancel := context.WithCancel(context.Background())
	p := &poller{seen: map[[2]int][]sighting{}, cancel: cancel, done: make(chan struct{})}
	topic := topics.Table(topics.DefaultPrefix, "account_transaction")
	go func() {
		defer close(p.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			type row struct {
				k [2]int
				m mark
			}
			var got []row
			err := sqldb.Each(ctx, db, "SELECT shard, kafka_partition, gtid, row_no FROM consumer_watermark WHERE topic = ?", func(r *sql.Rows) error {
				var x row
				var gtid string
				if err := r.Scan(&x.k[0], &x.k[1], &gtid, &x.m.row); err != nil {
					return err
				}
				var err error
				x.m.gtid, err = gtidSeq(gtid)
				got = append(got, x)
				return err
			}, topic)
			if err != nil {
				continue // the next poll will see it
			}
			at := time.Now()
			p.mu.Lock()
			for _, x := range got {
				list := p.seen[x.k]
				if len(list) == 0 || list[len(list)-1].mark != x.m {
					p.seen[x.k] = append(list, sighting{at, x.m})
				}
			}
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *poller) stop() {
	p.cancel()
	<-p.done
}

// visible is when transaction t of shard was first seen applied on every
// partition it wrote to, or the zero time.
func (p *poller) visible(shard int, t lagTx) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var at time.Time
	for part, row := range t.last {
		list := p.seen[[2]int{shard, part}]
		want := mark{t.gtid, int64(row)}
		i, _ := slices.BinarySearchFunc(list, want, func(s sighting, m mark) int {
			if s.reached(m) {
				return 1
			}
			return -1
		})
		if i == len(list) {
			return time.Time{}
		}
		at = later(at, list[i].at)
	}
	return at
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// waitFor waits until every transaction of txs is visible.
func (p *poller) waitFor(b *testing.B, txs [][]lagTx, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for shard, list := range txs {
		for _, t := range list {
			for p.visible(shard, t).IsZero() {
				if time.Now().After(deadline) {
					b.Fatalf("shard %d: transaction of GTID sequence %d not visible in balance after %s", shard, t.gtid, timeout)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
}

// lagProfiled are the processes on the lag's path, by name, with their
// HTTP ports.
func (s *stack) lagProfiled() map[string]int {
	out := map[string]int{"balance": s.ep.BalancePort}
	for i, port := range s.ep.ProducerPorts {
		out[fmt.Sprintf("cdc-producer-%d", i)] = port
	}
	return out
}

// profileSelf writes a CPU profile of this process (the embedded broker,
// the writers and the poller) over the next d, unless the process is
// already profiled (go test -cpuprofile).
func profileSelf(b *testing.B, path string, d time.Duration) {
	f, err := os.Create(path)
	if err != nil {
		b.Error(err)
		return
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Logf("no profile of the benchmark process: %v", err)
		return
	}
	time.Sleep(d)
	pprof.StopCPUProfile()
}

// selfCPU is the user + system time this process has spent.
func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// series are a component's metrics, by their text before the value (name
// and labels).
type series map[string]float64

// sum adds the series of metric name whose labels contain label.
func (m series) sum(name, label string) float64 {
	var v float64
	for k, x := range m {
		if n, labels, _ := strings.Cut(k, "{"); n == name && strings.Contains(labels, label) {
			v += x
		}
	}
	return v
}

// scrape reads the metrics a component serves on port.
func scrape(b *testing.B, port int) series {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out := series{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	return out
}
