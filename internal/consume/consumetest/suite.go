package consumetest

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/cdc"
	"github.com/shopledger/shopledger/internal/cdc/cdctest"
	"github.com/shopledger/shopledger/internal/consume"
	"github.com/shopledger/shopledger/internal/localdb"
	"github.com/shopledger/shopledger/internal/localstack"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/internal/topics"
)

// Subject is a consumer under test.
type Subject[C any] struct {
	// Tables are the shard tables it consumes.
	Tables []string
	// Topic is a table's topic; PK a row's primary key; Key its message
	// key, as the cdc-producer is configured.
	Topic func(table string) string
	PK    func(table string, r Row) string
	Key   func(table string, r Row) string
	// New returns the consumer over a fresh, migrated database on inst.
	New func(t testing.TB, inst *localdb.Instance) (consume.Handler[C], *sql.DB)
	// Mutate returns a random transaction on shard, consistent with its
	// current rows.
	Mutate func(r *rand.Rand, s *Shards, shard int) []Mutation
	// Want renders the state the consumer must hold for the shards'
	// current rows; Got renders its state the same way.
	Want func(s *Shards) string
	Got  func(t testing.TB, db *sql.DB) string
}

func (s Subject[C]) pk(table string, r Row) string  { return s.PK(table, r) }
func (s Subject[C]) key(table string, r Row) string { return s.Key(table, r) }
func (s Subject[C]) topic(table string) string      { return s.Topic(table) }

// fresh returns the consumer over a fresh database on a server of its own.
func (s Subject[C]) fresh(t testing.TB) (consume.Handler[C], *sql.DB) {
	return s.New(t, stacktest.MariaDB(t))
}

const partitions = 3

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Run runs the suite.
func Run[C any](t *testing.T, s Subject[C]) {
	t.Run("ShuffledAndRedelivered", func(t *testing.T) { shuffledAndRedelivered(t, s) })
	t.Run("RestoredShard", func(t *testing.T) { restoredShard(t, s) })
	t.Run("RetriedSnapshot", func(t *testing.T) { retriedSnapshot(t, s) })
	t.Run("GroupOverBroker", func(t *testing.T) { groupOverBroker(t, s) })
	t.Run("Bounded", func(t *testing.T) { bounded(t, s) })
}

// history runs transactions on every shard, in turn.
func (s Subject[C]) history(r *rand.Rand, sh *Shards, n int) []cdctest.Change {
	var out []cdctest.Change
	for i := range n {
		shard := i % sh.N()
		out = append(out, sh.Commit(shard, s.Mutate(r, sh, shard))...)
	}
	return out
}

// start makes shards with some rows from before the capture began, and
// the snapshots that publish them.
func (s Subject[C]) start(r *rand.Rand, n int) (*Shards, []cdctest.Change) {
	sh := newShards(s, 2)
	s.history(r, sh, n)
	var out []cdctest.Change
	for i := range sh.N() {
		out = append(out, sh.Snapshot(i)...)
	}
	return sh, out
}

// deliver turns streams into batches as an at-least-once consumer sees
// them: partitions interleaved at random, each in its order, with runs of
// earlier messages delivered again (a rebalance, a restart before the
// offsets were committed).
func deliver(r *rand.Rand, streams []*Stream, redeliver bool) [][]kafka.Message {
	cursor := make([]int, len(streams))
	var batches [][]kafka.Message
	var cur []kafka.Message
	size := 1 + r.IntN(800)
	for {
		var open []int
		for i, st := range streams {
			if cursor[i] < len(st.Msgs) {
				open = append(open, i)
			}
		}
		if len(open) == 0 {
			break
		}
		i := open[r.IntN(len(open))]
		if redeliver && cursor[i] > 0 && r.IntN(4) == 0 {
			cursor[i] -= 1 + r.IntN(min(cursor[i], 60))
		}
		n := min(1+r.IntN(50), len(streams[i].Msgs)-cursor[i])
		cur = append(cur, streams[i].Msgs[cursor[i]:cursor[i]+n]...)
		cursor[i] += n
		if len(cur) >= size {
			batches = append(batches, cur)
			cur, size = nil, 1+r.IntN(800)
		}
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return batches
}

// apply applies batches through h and returns the sum of their results.
func apply[C any](t testing.TB, db *sql.DB, h consume.Handler[C], batches [][]kafka.Message) consume.Result {
	t.Helper()
	var total consume.Result
	for _, b := range batches {
		res, err := consume.Apply(context.Background(), db, h, consume.Decode(h, b), nil)
		if err != nil {
			t.Fatal(err)
		}
		total.Applied += res.Applied
		total.Duplicates += res.Duplicates
		total.Superseded += res.Superseded
		total.Dead += res.Dead
	}
	return total
}

func (s Subject[C]) check(t testing.TB, sh *Shards, db *sql.DB, when string) {
	t.Helper()
	if got, want := s.Got(t, db), s.Want(sh); got != want {
		t.Fatalf("%s: state differs from the shards' rows\n got: %.2000s\nwant: %.2000s", when, got, want)
	}
}

// Every change applied once, whatever the interleaving of partitions and
// the redeliveries; everything delivered again (a reset to the first
// offsets) changes nothing.
func shuffledAndRedelivered[C any](t *testing.T, s Subject[C]) {
	r := rand.New(rand.NewPCG(1, 2))
	sh, changes := s.start(r, 200)
	changes = append(changes, s.history(r, sh, 1500)...)
	h, db := s.fresh(t)
	streams := sh.streams(changes, partitions)
	res := apply(t, db, h, deliver(r, streams, true))
	if res.Applied != len(changes) || res.Superseded != 0 || res.Dead != 0 {
		t.Errorf("first delivery: %+v, want %d applied, each once", res, len(changes))
	}
	s.check(t, sh, db, "after delivery")
	again := apply(t, db, h, deliver(r, streams, false))
	if again.Applied != 0 || again.Duplicates != len(changes) {
		t.Errorf("everything again: %+v, want all %d duplicates", again, len(changes))
	}
	s.check(t, sh, db, "after everything again")
}

// twoWays applies before and after as a consumer may see them: all
// interleaved at random (changes of the old epoch arriving after the new
// snapshot on other partitions), and before all applied first, then after.
func twoWays[C any](t *testing.T, s Subject[C], r *rand.Rand, sh *Shards, before, after []cdctest.Change, what string) {
	t.Helper()
	h, db := s.fresh(t)
	res := apply(t, db, h, deliver(r, sh.streams(append(append([]cdctest.Change(nil), before...), after...), partitions), true))
	s.check(t, sh, db, what+", delivered interleaved")
	if res.Superseded == 0 {
		t.Logf("%s: no change of an old epoch arrived after the new snapshot: %+v", what, res)
	}
	h, db = s.fresh(t)
	apply(t, db, h, deliver(r, sh.streams(before, partitions), true))
	apply(t, db, h, deliver(r, sh.streams(after, partitions), true))
	s.check(t, sh, db, what+", delivered in two steps")
}

// A shard restored to an earlier state (its binlog positions repeating)
// and snapshotted again: the consumer's part of that shard is rebuilt from
// the new snapshot and the changes after it, changes of the old epoch
// still in flight on other partitions are skipped, and the other shard is
// untouched.
func restoredShard[C any](t *testing.T, s Subject[C]) {
	r := rand.New(rand.NewPCG(3, 4))
	sh, before := s.start(r, 200)
	before = append(before, s.history(r, sh, 600)...)
	backup := sh.Copy(0)
	before = append(before, s.history(r, sh, 600)...)
	sh.Restore(0, backup)
	after := sh.Snapshot(0)
	after = append(after, s.history(r, sh, 600)...)
	twoWays(t, s, r, sh, before, after, "after a restore and its snapshot")
}

// A snapshot cut short by a crash and taken again from the start (a new
// epoch): the consumer holds the second snapshot's state, not both.
func retriedSnapshot[C any](t *testing.T, s Subject[C]) {
	r := rand.New(rand.NewPCG(5, 6))
	sh := newShards(s, 2)
	s.history(r, sh, 400)
	first := sh.Snapshot(0)
	before := first[:len(first)/2] // the crash
	after := append(sh.Snapshot(0), sh.Snapshot(1)...)
	after = append(after, s.history(r, sh, 400)...)
	twoWays(t, s, r, sh, before, after, "after a retried snapshot")
}

// refusing is a handler that refuses some changes (a bug of the day, a
// column it did not know yet): they become dead letters.
type refusing[C any] struct {
	consume.Handler[C]
	refuse map[string]bool // by message value
}

func (r refusing[C]) Decode(m kafka.Message) (C, cdc.Position, error) {
	c, pos, err := r.Handler.Decode(m)
	if err == nil && r.refuse[string(m.Value)] {
		return c, pos, errors.New("refused by the test")
	}
	return c, pos, err
}

// Two members of one group over a real Kafka-protocol broker share the
// partitions; a message that is no change event, and changes the consumer
// refuses, go to the dead-letter topic with where they came from and why,
// and the rest is applied; once the consumer takes them, a replay of the
// dead letters applies them, once; a reset of the group to the first
// offsets and a second pass change nothing.
func groupOverBroker[C any](t *testing.T, s Subject[C]) {
	r := rand.New(rand.NewPCG(7, 8))
	sh, changes := s.start(r, 100)
	changes = append(changes, s.history(r, sh, 800)...)
	var names []string
	for _, table := range s.Tables {
		names = append(names, s.Topic(table))
	}
	const dlq = "test.dead-letters"
	specs := []topics.Spec{{Name: dlq, Partitions: 1}}
	for _, n := range names {
		specs = append(specs, topics.Spec{Name: n, Partitions: partitions})
	}
	b, err := localstack.StartBroker(context.Background(), 0, "", specs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	streams := sh.streams(changes, partitions)
	total := 0
	for i, st := range streams {
		msgs := st.Msgs
		if i == 0 {
			msgs = append(msgs[:len(msgs)/2:len(msgs)/2], append([]kafka.Message{{Key: []byte("x"), Value: []byte("not a change event")}}, msgs[len(msgs)/2:]...)...)
		}
		msgs = append(msgs, msgs[:len(msgs)/3]...) // some twice, in order
		total += len(msgs)
		publish(t, b.Addrs(), st.Topic, st.Partition, msgs)
	}
	h, db := s.fresh(t)
	cfg := consume.Config{Brokers: b.Addrs(), Group: "conformance", Topics: names, BatchSize: 300, BatchWait: 20 * time.Millisecond,
		SessionTimeout: 6 * time.Second, DeadLetterTopic: dlq, DeadLetters: topics.DefaultSettings}
	refused := refusing[C]{Handler: h, refuse: map[string]bool{}}
	for _, c := range changes[len(changes)-3:] {
		refused.refuse[string(c.Value())] = true
	}
	g := runGroup[C](t, cfg, db, refused, 2)
	g.wait(t, total)
	g.stop()
	if res := g.result(); res.Dead != 1+3 || res.Applied != len(changes)-3 {
		t.Errorf("members: %+v, want every change but 3 applied once and 4 dead letters", res)
	}
	checkDeadLetter(t, b.Addrs(), dlq, streams[0].Topic)
	for range 2 {
		rep, err := consume.ReplayDeadLetters(context.Background(), cfg, db, h)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Applied+rep.Before != 3 || len(rep.StillDead) != 1 {
			t.Errorf("replay of the dead letters: %+v, want the 3 refused changes applied (once), one still dead", rep)
		}
	}
	s.check(t, sh, db, "after two members shared the topics and the dead letters were replayed")
	before := s.Got(t, db)
	resetTo(t, cfg, consume.Reset{To: consume.ToEarliest})
	g2 := runGroup(t, cfg, db, h, 1)
	g2.wait(t, total)
	g2.stop()
	if res := g2.result(); res.Applied != 0 {
		t.Errorf("after a reset to the first offsets: %+v, want nothing applied", res)
	}
	if after := s.Got(t, db); after != before {
		t.Errorf("state changed by consuming everything again")
	}
	rebuild(t, s, sh, cfg, db, h, total, len(changes))
}

// resetTo resets cfg's group as r says.
func resetTo(t testing.TB, cfg consume.Config, r consume.Reset) []consume.Planned {
	t.Helper()
	plan, err := consume.PlanReset(context.Background(), cfg.Brokers, cfg.Group, cfg.Topics, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := consume.CommitPlan(context.Background(), cfg.Brokers, cfg.Group, plan); err != nil {
		t.Fatal(err)
	}
	return plan
}

// stopAfter cancels a rebuild once it has applied its first batch.
type stopAfter struct {
	cancel context.CancelFunc
}

func (s stopAfter) Begin([]consume.Range) {}
func (s stopAfter) Reached(int, int64)    { s.cancel() }
func (s stopAfter) End()                  {}

// rebuild loses the state behind the watermarks' back (what a rebuild is
// for), then rebuilds it: a rebuild stopped after its first batch and run
// again ends with the shards' state, the group's offsets at the ends; the
// dead letters from before the rebuild are not replayed again (their
// changes were consumed again), only the one the rebuild sent again is
// there; a rebuild is refused while the group has a member.
func rebuild[C any](t *testing.T, s Subject[C], sh *Shards, cfg consume.Config, db *sql.DB, h consume.Handler[C], total, changes int) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Clear(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if s.Got(t, db) == s.Want(sh) {
		t.Fatal("the state equals the shards' after Clear")
	}
	stopped, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, err := consume.Rebuild(stopped, cfg, db, h, consume.RebuildOptions{Progress: stopAfter{cancel}}, quiet); err == nil {
		t.Fatal("a rebuild cancelled after its first batch returned no error")
	}
	out, err := consume.Rebuild(ctx, cfg, db, h, consume.RebuildOptions{}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if out.Handled() != total || out.Applied != changes || out.Dead != 1 {
		t.Errorf("rebuild: %+v of %d messages, want each handled once, every change applied and 1 dead letter", out.Result, total)
	}
	s.check(t, sh, db, "after a rebuild interrupted and run again")
	rep, err := consume.ReplayDeadLetters(ctx, cfg, db, h)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Applied != 0 || rep.Before != 0 || len(rep.StillDead) != 1 {
		t.Errorf("replay of the dead letters after a rebuild: %+v, want only the one the rebuild sent, still dead", rep)
	}
	s.check(t, sh, db, "after the rebuild and a replay of the dead letters")
	for _, p := range resetTo(t, cfg, consume.Reset{To: consume.ShiftBy}) {
		if p.Current != p.End {
			t.Errorf("after the rebuild the group's offset of %s[%d] is %d, want the end %d", p.Topic, p.Partition, p.Current, p.End)
		}
	}
	g := runGroup(t, cfg, db, h, 1)
	deadline := time.Now().Add(time.Minute)
	for { // until the member has joined
		_, err := consume.PlanReset(ctx, cfg.Brokers, cfg.Group, cfg.Topics, consume.Reset{})
		if errors.Is(err, consume.ErrGroupActive) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PlanReset with a member in the group = %v, want ErrGroupActive", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := consume.Rebuild(ctx, cfg, db, h, consume.RebuildOptions{}, quiet); !errors.Is(err, consume.ErrGroupActive) {
		t.Errorf("rebuild with a member in the group = %v, want ErrGroupActive", err)
	}
	g.stop()
}

// The bookkeeping holds a row per shard, topic and partition, however
// many changes go through: a million changes leave as many rows as the
// first thousands.
func bounded[C any](t *testing.T, s Subject[C]) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	r := rand.New(rand.NewPCG(9, 10))
	sh, first := s.start(r, 100)
	h, db := s.fresh(t)
	apply(t, db, h, deliver(r, sh.streams(first, partitions), false))
	var early int
	for done := len(first); done < n; {
		changes := s.history(r, sh, 2000)
		done += len(changes)
		apply(t, db, h, deliver(r, sh.streams(changes, partitions), false))
		if early == 0 {
			early = bookkeepingRows(t, db)
		}
	}
	late := bookkeepingRows(t, db)
	limit := sh.N() + sh.N()*len(s.Tables)*partitions // epochs + watermarks
	if late > limit || late != early {
		t.Errorf("bookkeeping rows: %d after the first thousands of changes, %d after %d; want the same, at most %d", early, late, n, limit)
	}
	s.check(t, sh, db, "after a million changes")
	t.Logf("%d changes applied; bookkeeping rows: %d", n, late)
}

func bookkeepingRows(t testing.TB, db *sql.DB) int {
	t.Helper()
	var a, b int
	if err := db.QueryRow("SELECT (SELECT COUNT(*) FROM consumer_watermark), (SELECT COUNT(*) FROM consumer_epoch)").Scan(&a, &b); err != nil {
		t.Fatal(err)
	}
	return a + b
}

func publish(t testing.TB, brokers []string, topic string, p int, msgs []kafka.Message) {
	t.Helper()
	conn, err := kafka.DialLeader(context.Background(), "tcp", brokers[0], topic, p)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for len(msgs) > 0 {
		n := min(len(msgs), 1000)
		out := make([]kafka.Message, n)
		for i, m := range msgs[:n] {
			out[i] = kafka.Message{Key: m.Key, Value: m.Value}
		}
		if _, err := conn.WriteMessages(out...); err != nil {
			t.Fatal(err)
		}
		msgs = msgs[n:]
	}
}

// checkDeadLetter finds the message that is no change event on the
// dead-letter topic, as it was, with its origin and reason in its headers.
func checkDeadLetter(t testing.TB, brokers []string, dlq, from string) {
	t.Helper()
	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: dlq, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		m, err := rd.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("dead-letter topic: %v", err)
		}
		if string(m.Value) != "not a change event" {
			continue
		}
		headers := map[string]string{}
		for _, h := range m.Headers {
			headers[h.Key] = string(h.Value)
		}
		if headers[consume.HeaderTopic] != from || !strings.Contains(headers[consume.HeaderReason], "not a change event") || headers[consume.HeaderOffset] == "" {
			t.Errorf("dead letter headers %v; want its topic %s, offset and reason", headers, from)
		}
		return
	}
}

// group runs consumer-group members.
type group struct {
	regs   []*prometheus.Registry
	cancel []context.CancelFunc
	done   chan struct{}
	n      int
}

func runGroup[C any](t testing.TB, cfg consume.Config, db *sql.DB, h consume.Handler[C], members int) *group {
	g := &group{done: make(chan struct{}, members), n: members}
	for range members {
		reg := prometheus.NewRegistry()
		ctx, cancel := context.WithCancel(context.Background())
		c := consume.New(cfg, db, h, reg, quiet)
		g.regs, g.cancel = append(g.regs, reg), append(g.cancel, cancel)
		go func() {
			c.Run(ctx)
			g.done <- struct{}{}
		}()
	}
	t.Cleanup(g.stop)
	return g
}

func (g *group) result() consume.Result {
	var res consume.Result
	for _, reg := range g.regs {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != "shopledger_consumer_changes_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				v := int(m.GetCounter().GetValue())
				switch m.GetLabel()[0].GetValue() {
				case "applied":
					res.Applied += v
				case "duplicate":
					res.Duplicates += v
				case "superseded":
					res.Superseded += v
				case "dead_letter":
					res.Dead += v
				case "tombstone":
					res.Tombstones += v
				}
			}
		}
	}
	return res
}

func (g *group) wait(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for g.result().Handled() < n {
		if time.Now().After(deadline) {
			t.Fatalf("members handled %+v of %d messages", g.result(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (g *group) stop() {
	for _, c := range g.cancel {
		c()
	}
	for range g.n {
		<-g.done
	}
	g.cancel, g.n = nil, 0
}
