package debezium

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/shopledger/shopledger/internal/localdb"
	"github.com/shopledger/shopledger/internal/localstack"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/internal/topics"
	"github.com/shopledger/shopledger/schema"
)

// peerWorkload is a load written into the shard's good table, the table
// both captures publish: write commits it and returns the rows written.
type peerWorkload struct {
	name  string
	write func(b *testing.B, db *sql.DB) int64
}

var peerWorkloads = []peerWorkload{
	{"one-1M-row-transaction", writeOneTransaction},
	{"200k-small-transactions", writeSmallTransactions},
}

// BenchmarkPeers runs Debezium's own MariaDB connector (the runner, i.e.
// debezium-embedded publishing through JsonConverter, schemas off, with a
// Kafka producer at acks=all, as Debezium Server's Kafka sink does) and
// the cdc-producer binary (its production defaults) over the same shard
// and the same binlog, one after the other, into the same Apache Kafka
// broker, for each workload:
//
//  1. both start on the fresh shard, capture a marker row, and stop with
//     their position stored (our checkpoint topic; Debezium's offsets file);
//  2. the workload is committed once, both stopped;
//  3. each in turn is started again and resumes from its position: the
//     topic of the table written is polled (end offsets, every 20 ms) until
//     it holds a message for every row, and the process's CPU time
//     (utime+stime of /proc/<pid>/stat, the whole JVM for Debezium) is
//     read at each poll.
//
// rows/s and CPU-s/Mrows are taken from the first poll that saw a
// workload message to the one that saw them all (both processes at work,
// their start-up excluded); startup-s is the start to the first message.
// rate-ratio is our rows/s over Debezium's, CPU-ratio Debezium's CPU per
// row over ours.
//
//	make bench-peers
func BenchmarkPeers(b *testing.B) {
	for _, w := range peerWorkloads {
		b.Run(w.name, func(b *testing.B) {
			for range b.N {
				runPeers(b, w)
			}
		})
	}
}

// peerRuns alternates which side goes first from one run to the next.
var peerRuns atomic.Int64

func runPeers(b *testing.B, w peerWorkload) {
	b.StopTimer()
	jar := buildRunner(b)
	inst := stacktest.MariaDB(b)
	db := stacktest.Database(b, inst, "shop", schema.Shard)
	kc := stacktest.Kafka(b, 1)
	sides := []*peer{ourPeer(b, w, inst, kc.Brokers()), debeziumPeer(b, jar, inst, kc.Brokers())}
	warmUp(b, db, kc.Brokers(), sides)

	begin := time.Now()
	rows := w.write(b, db)
	b.Logf("%s: %d rows committed in %s", w.name, rows, time.Since(begin).Round(time.Millisecond))

	if peerRuns.Add(1)%2 == 0 {
		sides[0], sides[1] = sides[1], sides[0]
	}
	res := map[string]peerResult{}
	for _, s := range sides {
		r := s.measure(b, kc.Brokers(), rows)
		res[s.name] = r
		b.Logf("%s: %.0f rows/s, %.2f CPU-s per million rows; started in %s (%.2f CPU-s); %s in all",
			s.name, r.rate(), r.cpuPerMillion(), r.startup.Round(time.Millisecond), r.startupCPU.Seconds(), (r.startup + r.window).Round(time.Millisecond))
	}
	reportPeers(b, w, res[sideOurs], res[sideDebezium])
}

// warmUp starts both sides on the fresh shard, has them capture two marker
// rows (the first may come in Debezium's snapshot, the second then comes
// from the binlog, once both stream) and stops them with their position
// stored.
func warmUp(b *testing.B, db *sql.DB, brokers []string, sides []*peer) {
	for _, s := range sides {
		s.start(b)
	}
	for id := range 2 {
		if _, err := db.Exec("INSERT INTO good (id, name) VALUES (?, 'marker')", -1-id); err != nil {
			b.Fatal(err)
		}
		var gtid string
		if err := db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&gtid); err != nil {
			b.Fatal(err)
		}
		for _, s := range sides {
			s.settle(b, gtid, int64(id+1))
		}
	}
	for _, s := range sides {
		s.stop()
		if s.before = endOffsets(b, brokers, s.topic); s.before != 2 {
			b.Fatalf("%s: %d messages in %s after the marker rows, want 2", s.name, s.before, s.topic)
		}
	}
}

// reportPeers reports both sides' figures and their ratios as benchmark
// metrics (no ns/op: the run's length says nothing).
func reportPeers(b *testing.B, w peerWorkload, ours, theirs peerResult) {
	b.ReportMetric(0, "ns/op")
	for name, r := range map[string]peerResult{sideOurs: ours, sideDebezium: theirs} {
		b.ReportMetric(r.rate(), name+"-rows/s")
		b.ReportMetric(r.cpuPerMillion(), name+"-CPU-s/Mrows")
		b.ReportMetric(r.startup.Seconds(), name+"-startup-s")
	}
	rate, cpu := ours.rate()/theirs.rate(), theirs.cpuPerMillion()/ours.cpuPerMillion()
	b.ReportMetric(rate, "rate-ratio")
	b.ReportMetric(cpu, "CPU-ratio")
	b.Logf("%s: rate-ratio %.2f (ours / Debezium's rows/s), CPU-ratio %.2f (Debezium's CPU per row / ours); target: both at least 5",
		w.name, rate, cpu)
}

// The sides' names, as the metrics name them.
const (
	sideOurs     = "ours"
	sideDebezium = "debezium"
)

// peer is one capture under test: started and stopped as a process that
// resumes from its stored position.
type peer struct {
	name  string
	topic string // the topic of the good table
	// start runs the process; stop ends it (SIGTERM: it stores its
	// position as it stops).
	start func(b *testing.B)
	stop  func()
	pid   func() int
	// settle waits until the transaction gtid, the markers'th marker
	// row, is captured and its position stored.
	settle func(b *testing.B, gtid string, markers int64)
	// catchingUp, if set, is called once the process started to catch up.
	catchingUp func(b *testing.B)
	before     int64 // messages in topic before the workload
}

// ourPeer is the cdc-producer binary on shard 0 of inst with its
// production defaults (topic prefix shop, every CDC table, the cdc user).
func ourPeer(b *testing.B, w peerWorkload, inst *localdb.Instance, brokers []string) *peer {
	port := freePort(b)
	logs, err := os.Create(filepath.Join(b.TempDir(), "cdc-producer.log"))
	if err != nil {
		b.Fatal(err)
	}
	env := []string{"DATABASE_ADDR=" + inst.Addr(), "KAFKA_BROKERS=" + strings.Join(brokers, ","),
		fmt.Sprintf("SERVER_PORT=%d", port), "LOGGING_LEVEL=info"}
	prof := stacktest.BenchProfiling(b, 20)
	if prof.Dir != "" {
		env = append(env, prof.Env()...)
	}
	p := &localstack.Process{Name: "cdc-producer-0", Bin: stacktest.Binary(b, "cdc-producer"), Args: []string{"--shard", "0"},
		Env: env, Out: &localstack.PrefixWriter{W: logs}}
	running := false
	b.Cleanup(func() {
		if running {
			p.Stop(10 * time.Second)
		}
		if b.Failed() {
			log, _ := os.ReadFile(logs.Name())
			b.Logf("cdc-producer log:\n%s", tail(string(log), 8000))
		}
	})
	var profiles sync.WaitGroup
	b.Cleanup(profiles.Wait)
	return &peer{
		name: sideOurs, topic: topics.Table(topics.DefaultPrefix, "good"),
		catchingUp: func(b *testing.B) {
			if prof.Dir == "" {
				return
			}
			profiles.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := localstack.WaitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/health", port)); err != nil {
					b.Errorf("profile: cdc-producer's server: %v", err)
					return
				}
				prof.Fetch(b, port, prof.CPU(), w.name+"-cdc-producer.cpu")
			})
		},
		start: func(b *testing.B) {
			if err := p.Start(); err != nil {
				b.Fatal(err)
			}
			running = true
		},
		stop: func() { p.Stop(10 * time.Second); running = false },
		pid:  p.Pid,
		settle: func(b *testing.B, gtid string, _ int64) {
			waitFor(b, "our checkpoint at "+gtid, func() (bool, string) {
				got := checkpointGTID(b, brokers, topics.Checkpoints(topics.DefaultPrefix))
				return got == gtid, "checkpoint " + got
			})
		},
	}
}

// debeziumPeer is the runner with Debezium's MariaDB connector on the same
// tables as ours, its offsets and schema history in files, its topics
// dbz.shop.<table> with our partition count.
func debeziumPeer(b *testing.B, jar string, inst *localdb.Instance, brokers []string) *peer {
	offsets := filepath.Join(b.TempDir(), "offsets")
	args := []string{"--port", strconv.Itoa(inst.Port), "--user", "cdc", "--database", "shop",
		"--tables", strings.Join(topics.CDCTables, ","), "--server-id", "5402", "--topic-prefix", "dbz",
		"--kafka", strings.Join(brokers, ","), "--topic-partitions", strconv.Itoa(topics.DefaultSettings.Partitions),
		"--offsets", offsets}
	// Runner options to try Debezium tuned (e.g. --producer batch.size=1048576
	// --set max.batch.size=8192); by default it runs with its defaults.
	if extra := os.Getenv("SHOPLEDGER_BENCH_DEBEZIUM_ARGS"); extra != "" {
		args = append(args, strings.Fields(extra)...)
		b.Logf("Debezium runner options added: %s", extra)
	}
	s := &peer{name: sideDebezium, topic: "dbz.shop.good"}
	var r *runner
	s.start = func(b *testing.B) { r = startCapture(b, jar, args...) }
	s.stop = func() { r.stop() }
	s.pid = func() int { return r.cmd.Process.Pid }
	s.settle = func(b *testing.B, _ string, markers int64) {
		waitFor(b, "the markers in "+s.topic, func() (bool, string) {
			n := endOffsets(b, brokers, s.topic)
			return n >= markers, fmt.Sprintf("%d messages", n)
		})
		// The engine flushes its offsets every second (and as it stops).
		time.Sleep(2 * time.Second)
	}
	return s
}

// peerResult is a side's catch-up, as polled.
type peerResult struct {
	rows       int64         // rows whose messages came in the window
	window     time.Duration // the first poll that saw a workload message to the one that saw all
	cpu        time.Duration // the process's CPU time in the window
	startup    time.Duration // the process's start to the window's start
	startupCPU time.Duration // the process's CPU time before the window
}

func (r peerResult) rate() float64 { return float64(r.rows) / r.window.Seconds() }

func (r peerResult) cpuPerMillion() float64 { return r.cpu.Seconds() / float64(r.rows) * 1e6 }

// measure starts s and polls its topic and CPU time until the topic holds
// a message for each of rows rows; then stops s and checks that no row came
// twice.
func (s *peer) measure(b *testing.B, brokers []string, rows int64) peerResult {
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: &kafka.Transport{}}
	defer cl.Transport.(*kafka.Transport).CloseIdleConnections()
	begin := time.Now()
	s.start(b)
	if s.catchingUp != nil {
		s.catchingUp(b)
	}
	pid := s.pid()
	var r peerResult
	var first time.Time
	var firstRows int64
	lastLog := begin
	for {
		n := messages(b, cl, s.topic) - s.before
		now := time.Now()
		cpu, err := stacktest.ProcessCPU(pid)
		if err != nil {
			b.Fatal(err)
		}
		if first.IsZero() && n > 0 {
			first, firstRows, r.startup, r.startupCPU = now, n, now.Sub(begin), cpu
		}
		if n >= rows {
			r.rows, r.window, r.cpu = rows-firstRows, now.Sub(first), cpu-r.startupCPU
			break
		}
		if time.Since(begin) > 30*time.Minute {
			b.Fatalf("%s: %d of %d rows in %s after 30 minutes", s.name, n, rows, s.topic)
		}
		if now.Sub(lastLog) >= 30*time.Second {
			b.Logf("%s: %d of %d rows after %s", s.name, n, rows, now.Sub(begin).Round(time.Second))
			lastLog = now
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.stop()
	if r.rows == 0 {
		b.Fatalf("%s: every row came in the first poll: nothing timed", s.name)
	}
	if n := messages(b, cl, s.topic) - s.before; n != rows {
		b.Errorf("%s: %d messages in %s for %d rows", s.name, n, s.topic, rows)
	}
	// Read from the binlog, not snapshotted again: an insert's op is c.
	if last := lastMessage(b, brokers, s.topic); !strings.Contains(string(last), `"op":"c"`) {
		b.Errorf("%s: the last message in %s is not a streamed insert: %.300s", s.name, s.topic, last)
	}
	return r
}

// lastMessage is the value of the last message in partition 0 of topic.
func lastMessage(b *testing.B, brokers []string, topic string) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	last, err := conn.ReadLastOffset()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Seek(last-1, kafka.SeekAbsolute); err != nil {
		b.Fatal(err)
	}
	m, err := conn.ReadMessage(16 << 20)
	if err != nil {
		b.Fatalf("read the last message of %s: %v", topic, err)
	}
	return m.Value
}

// writeOneTransaction commits 1,000,000 rows in one INSERT (BenchmarkCDC's
// transaction in e2e).
func writeOneTransaction(b *testing.B, db *sql.DB) int64 {
	const rows = 1_000_000
	if _, err := db.Exec(fmt.Sprintf(`INSERT INTO good (id, name, brand, price)
		SELECT seq, CONCAT('good-', seq), 'acme', seq %% 10000 / 100 FROM seq_1_to_%d`, rows)); err != nil {
		b.Fatal(err)
	}
	return rows
}

// writeSmallTransactions commits 200,000 transactions of 1 to 10 rows
// each (a seeded draw, so every run writes the same), one multi-row INSERT
// each, from 4 connections.
func writeSmallTransactions(b *testing.B, db *sql.DB) int64 {
	const txs, conns = 200_000, 4
	rng := rand.New(rand.NewPCG(12, 3))
	var stmts []string
	var rows int64
	for range txs {
		var q strings.Builder
		q.WriteString("INSERT INTO good (id, name, brand, price) VALUES ")
		for i := range 1 + rng.IntN(10) {
			rows++
			if i > 0 {
				q.WriteByte(',')
			}
			fmt.Fprintf(&q, "(%d,'good-%d','acme',%d.%02d)", rows, rows, rows%100, rows%97)
		}
		stmts = append(stmts, q.String())
	}
	db.SetMaxOpenConns(conns)
	var g errgroup.Group
	for c := range conns {
		g.Go(func() error {
			for i := c; i < len(stmts); i += conns {
				if _, err := db.Exec(stmts[i]); err != nil {
					return fmt.Errorf("transaction %d: %w", i, err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	return rows
}

// endOffsets counts the messages in topic (every partition); 0 if it does
// not exist.
func endOffsets(b *testing.B, brokers []string, topic string) int64 {
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: &kafka.Transport{}}
	defer cl.Transport.(*kafka.Transport).CloseIdleConnections()
	return messages(b, cl, topic)
}

// messages counts the messages in topic through cl; 0 if it does not exist.
func messages(b *testing.B, cl *kafka.Client, topic string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		b.Fatalf("metadata of %s: %v", topic, err)
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range md.Topics {
		if t.Error != nil {
			return 0
		}
		for _, p := range t.Partitions {
			req.Topics[t.Name] = append(req.Topics[t.Name], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
		}
	}
	if len(req.Topics) == 0 {
		return 0
	}
	resp, err := cl.ListOffsets(ctx, req)
	if err != nil {
		b.Fatalf("offsets of %s: %v", topic, err)
	}
	var n int64
	for _, ps := range resp.Topics {
		for _, p := range ps {
			if p.Error != nil {
				b.Fatalf("offsets of %s[%d]: %v", topic, p.Partition, p.Error)
			}
			n += p.LastOffset - p.FirstOffset
		}
	}
	return n
}

// checkpointGTID returns the GTID set of shard 0's latest checkpoint in
// topic ("" if none yet).
func checkpointGTID(b *testing.B, brokers []string, topic string) string {
	var gtid string
	for _, r := range readTopic(b, brokers, topic) {
		var cp struct {
			GTID string `json:"gtid"`
		}
		if string(r.Key) == "shard-0" && json.Unmarshal(r.Value, &cp) == nil {
			gtid = cp.GTID
		}
	}
	return gtid
}

func freePort(b *testing.B) int {
	p, err := localdb.FreePort()
	if err != nil {
		b.Fatal(err)
	}
	return p
}
