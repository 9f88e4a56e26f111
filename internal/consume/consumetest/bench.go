package consumetest

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/cdc/cdctest"
	"github.com/shopledger/shopledger/internal/consume"
	"github.com/shopledger/shopledger/internal/localdb"
	"github.com/shopledger/shopledger/internal/localstack"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/internal/topics"
)

// Limit is a consumer benchmark's limit: the least SQL a perfect consumer
// would run for the same changes on the same server. No Kafka, no
// decoding, no bookkeeping: the changes in their publication order, in
// batches of the consumer's batch size, each batch one transaction of
// multi-row upserts of the keys the changes touch.
type Limit struct {
	// Tables are the CREATE TABLE statements of the limit's tables, made
	// in a database of their own next to the consumer's.
	Tables []string
	// Write adds one batch of changes to those tables in tx.
	Write func(ctx context.Context, tx *sql.Tx, changes []cdctest.Change) error
}

// turn alternates which side of a benchmark runs first across its runs
// (go test -count N calls a benchmark N times with b.N = 1).
var turn atomic.Int64

// benchSide is what one side of the benchmark did.
type benchSide struct {
	events int
	spent  time.Duration
	use    stacktest.Usage
}

func (s *benchSide) add(events int, spent time.Duration, use stacktest.Usage) {
	s.events += events
	s.spent += spent
	if s.use.Status == nil {
		s.use = use
		return
	}
	s.use = s.use.Add(use)
}

func (s *benchSide) rate() float64 { return float64(s.events) / s.spent.Seconds() }

func (s *benchSide) report(b *testing.B, prefix string) {
	n := float64(s.events)
	b.ReportMetric(float64(s.use.ServerCPU.Nanoseconds())/n, prefix+"srv-ns/event")
	b.ReportMetric(float64(s.use.ClientCPU.Nanoseconds())/n, prefix+"cli-ns/event")
	b.ReportMetric(float64(s.use.RowOps())/n, prefix+"rowops/event")
}

// Benchmark measures one consumer member's apply rate against its limit,
// in the same run, on the same MariaDB server: n changes of s.Mutate's
// kind pre-published to a real Kafka-protocol broker (3 partitions per
// topic), consumed from the first offset into a fresh database in batches
// of batch, from the first change applied to the last (the group's join
// left out), fetch, decode, dedupe and commit included; and the same
// changes written by limit.Write in batches of batch. The two sides take
// turns first, so that a noisy neighbour hurts both alike.
//
// Metrics: events/s (consumer), limit-rows/s (changes/s of the limit),
// ratio (consumer/limit), and per change of each side (limit- prefixed):
// the server's CPU (srv-ns/event), this process's CPU (cli-ns/event; the
// consumer's includes the embedded broker serving its fetches) and InnoDB
// row operations (rowops/event).
func Benchmark[C any](b *testing.B, s Subject[C], n, batch int, limit Limit) {
	r := rand.New(rand.NewPCG(11, 12))
	sh, changes := s.start(r, 100)
	for len(changes) < n {
		changes = append(changes, s.history(r, sh, 1000)...)
	}
	var names []string
	specs := []topics.Spec{{Name: "bench.dead-letters", Partitions: 1}}
	for _, t := range s.Tables {
		names = append(names, s.Topic(t))
		specs = append(specs, topics.Spec{Name: s.Topic(t), Partitions: partitions})
	}
	br, err := localstack.StartBroker(context.Background(), 0, "", specs...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(br.Close)
	for _, st := range sh.streams(changes, partitions) {
		publish(b, br.Addrs(), st.Topic, st.Partition, st.Msgs)
	}
	var consumer, lim benchSide
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		inst := stacktest.MariaDB(b)
		root, err := inst.DB("")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { root.Close() })
		h, db := s.New(b, inst)
		limDB := limitDatabase(b, inst, root, limit)
		cfg := consume.Config{Brokers: br.Addrs(), Group: "bench-" + string(rune('a'+i)), Topics: names, BatchSize: batch,
			BatchWait: 20 * time.Millisecond, SessionTimeout: 6 * time.Second, DeadLetterTopic: "bench.dead-letters", DeadLetters: topics.DefaultSettings}
		b.StartTimer()
		sides := []func(){
			func() {
				measure(b, inst, root, &consumer, func() (int, time.Duration) { return consumeAll(b, cfg, db, h, len(changes)) })
			},
			func() {
				measure(b, inst, root, &lim, func() (int, time.Duration) { return writeLimit(b, limDB, limit, changes, batch) })
			},
		}
		if turn.Add(1)%2 == 0 {
			sides[0], sides[1] = sides[1], sides[0]
		}
		for _, side := range sides {
			side()
		}
	}
	b.ReportMetric(consumer.rate(), "events/s")
	b.ReportMetric(lim.rate(), "limit-rows/s")
	b.ReportMetric(consumer.rate()/lim.rate(), "ratio")
	consumer.report(b, "")
	lim.report(b, "limit-")
}

// measure runs run, which returns how many changes it applied and in what
// time, and adds that and what the server and this process spent to side.
func measure(b *testing.B, inst *localdb.Instance, root *sql.DB, side *benchSide, run func() (int, time.Duration)) {
	ctx := context.Background()
	before, err := stacktest.Measure(ctx, inst, root)
	if err != nil {
		b.Fatal(err)
	}
	events, spent := run()
	after, err := stacktest.Measure(ctx, inst, root)
	if err != nil {
		b.Fatal(err)
	}
	side.add(events, spent, after.Sub(before))
}

// consumeAll runs one member until it handled n messages, and returns how
// many it handled from its first applied batch on and in what time: the
// group's join and the first batch's fetch are the broker's business, not
// the apply rate's.
func consumeAll[C any](b *testing.B, cfg consume.Config, db *sql.DB, h consume.Handler[C], n int) (int, time.Duration) {
	g := runGroup(b, cfg, db, h, 1)
	defer g.stop()
	var first int
	var start time.Time
	deadline := time.Now().Add(2 * time.Minute)
	for {
		done := g.result().Handled()
		if first == 0 && done > 0 {
			first, start = done, time.Now()
		}
		if done >= n {
			return done - first, time.Since(start)
		}
		if time.Now().After(deadline) {
			b.Fatalf("member handled %d of %d messages", done, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// limitDatabase makes a database of the limit's tables on inst.
func limitDatabase(b *testing.B, inst *localdb.Instance, root *sql.DB, limit Limit) *sql.DB {
	if _, err := root.Exec("CREATE DATABASE bench_limit"); err != nil {
		b.Fatal(err)
	}
	db, err := sqldb.Open(stacktest.Config(inst, "bench_limit"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	for _, q := range limit.Tables {
		if _, err := db.Exec(q); err != nil {
			b.Fatalf("limit table: %v", err)
		}
	}
	return db
}

// writeLimit writes changes through limit in batches of batch, one
// transaction each.
func writeLimit(b *testing.B, db *sql.DB, limit Limit, changes []cdctest.Change, batch int) (int, time.Duration) {
	ctx := context.Background()
	start := time.Now()
	for k := 0; k < len(changes); k += batch {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := limit.Write(ctx, tx, changes[k:min(k+batch, len(changes))]); err != nil {
			tx.Rollback()
			b.Fatalf("limit: %v", err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	return len(changes), time.Since(start)
}
