package capture

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopledger/shopledger/internal/localdb"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/internal/topics"
	"github.com/shopledger/shopledger/schema"
)

type env struct {
	t *testing.T
	// tombstones are the keys of the tombstones the last consume read.
	tombstones []string
	inst       *localdb.Instance
	db         *sql.DB
	cluster    *kfake.Cluster
	port       int    // the broker's port, kept across a restart
	dir        string // the broker's data
	brokers    []string
	cfg        Config
}

// startBroker (re)starts the broker on e.port with its data in e.dir.
func (e *env) startBroker() {
	e.t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(e.port), kfake.DataDir(e.dir))
	if err != nil {
		e.t.Fatal(err)
	}
	e.cluster = cluster
	e.brokers = cluster.ListenAddrs()
}

func setup(t *testing.T, snapshot SnapshotMode) *env {
	t.Helper()
	inst := stacktest.MariaDB(t)
	db := stacktest.Database(t, inst, "shop", schema.Shard)
	port, err := localdb.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, inst: inst, db: db, port: port, dir: t.TempDir(), cfg: Config{
		Shard: 1, Addr: inst.Addr(), User: "cdc", Database: "shop", ServerID: 1001, TopicPrefix: "shop", FlushRows: 5000,
		Snapshot: snapshot, SnapshotLockTimeout: 5 * time.Second, Tombstones: true, Tables: map[string]Key{"good": {},
			"events": {Ordering: true}, "account_transaction": {Columns: []string{"user_id"}}},
	}}
	e.startBroker()
	t.Cleanup(func() { e.cluster.Close() })
	specs := []topics.Spec{topics.DefaultSettings.Compacted("cps")}
	for table := range e.cfg.Tables {
		specs = append(specs, topics.Spec{Name: e.cfg.Topic(table), Partitions: 3})
	}
	if err := topics.Ensure(context.Background(), e.brokers, specs...); err != nil {
		t.Fatal(err)
	}
	return e
}

// start runs a capture, waits until it streams, and returns its stop.
func (e *env) start() (stop func() error) {
	cps := NewCheckpoints(e.brokers, "cps")
	c := New(e.cfg, e.brokers, cps, testLogger(e.t), NewMetrics(prometheus.NewRegistry()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for c.Ready(ctx) != nil {
		if time.Now().After(deadline) {
			e.t.Fatal("capture not streaming after 20 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return func() error {
		cancel()
		err := <-done
		cps.Close()
		return err
	}
}

func (e *env) exec(q string, args ...any) {
	e.t.Helper()
	if _, err := e.db.Exec(q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

// Envelope is a change event value decoded for inspection.
type Envelope struct {
	Before map[string]any `json:"before"`
	After  map[string]any `json:"after"`
	Source Source         `json:"source"`
	Op     string         `json:"op"`
	TsMs   int64          `json:"ts_ms"`
}

type msg struct {
	key map[string]any
	env Envelope
	raw map[string]any
}

// consume reads topic until it holds want distinct row changes (or fails
// after 20 s) and returns them in binlog order. Repeats of a source position,
// which at-least-once delivery allows, are dropped as a consumer would.
func (e *env) consume(topic string, want int) []msg {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	var out []msg
	e.tombstones = nil
	seen := map[Source]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for len(out) < want && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			if r.Value == nil {
				e.tombstones = append(e.tombstones, string(r.Key))
				return
			}
			var m msg
			if err := json.Unmarshal(r.Key, &m.key); err != nil {
				e.t.Fatalf("key %s: %v", r.Key, err)
			}
			if err := json.Unmarshal(r.Value, &m.env); err != nil {
				e.t.Fatalf("value %s: %v", r.Value, err)
			}
			json.Unmarshal(r.Value, &m.raw)
			pos := m.env.Source
			pos.TsMs, pos.TsUs, pos.TsNs = 0, 0, 0
			if !seen[pos] {
				seen[pos] = true
				out = append(out, m)
			}
		})
	}
	if len(out) != want {
		e.t.Fatalf("topic %s has %d messages, want %d", topic, len(out), want)
	}
	sort.SliceStable(out, func(i, j int) bool { return before(out[i].env.Source, out[j].env.Source) })
	return out
}

func before(a, b Source) bool {
	if a.Epoch != b.Epoch {
		return a.Epoch < b.Epoch
	}
	if sa, sb := a.Snapshot != SnapshotFalse, b.Snapshot != SnapshotFalse; sa != sb {
		return sa // a snapshot's rows come before the changes streamed after it
	}
	if a.File != b.File {
		return a.File < b.File
	}
	if a.Pos != b.Pos {
		return a.Pos < b.Pos
	}
	return a.Row < b.Row
}

func TestSnapshotThenStream(t *testing.T) {
	e := setup(t, SnapshotInitial)
	e.exec("INSERT INTO good (id, name, brand, price) VALUES (1, 'kettle', 'acme', 12.50), (2, 'mug', '', 3.00)")
	e.exec(`INSERT INTO events (event_key, event_type, shop_id, user_id, order_id, good_id, timestamp, shard, status, source_file, source_line)
		VALUES ('k0', 3, 5, 7, 800, 3, '2025-10-15 17:41:39.000', 1, 'pending', '20251015174140', 0)`)
	stop := e.start()
	defer stop()
	e.exec("INSERT INTO good (id, name, price) VALUES (3, 'spoon', 0.99)")
	e.exec("UPDATE good SET price = 13.00 WHERE id = 1")
	e.exec("DELETE FROM good WHERE id = 2")
	e.exec(`INSERT INTO events (event_key, event_type, shop_id, user_id, order_id, good_id, timestamp, shard, status, source_file, source_line)
		VALUES ('k1', 1, 5, 7, 900, 3, '2025-10-15 17:41:40.021', 1, 'applied', '20251015174140', 1),
		       ('k2', 2, 5, NULL, NULL, 3, '2025-10-15 17:41:40.022', 1, 'rejected', '20251015174140', 2)`)

	goods := e.consume("shop.good", 5)
	wantOps := []string{"r", "r", "c", "u", "d"}
	for i, m := range goods {
		if m.env.Op != wantOps[i] {
			t.Fatalf("good message %d op = %s, want %s (%+v)", i, m.env.Op, wantOps[i], m.env)
		}
	}
	if a := goods[0].env.After; a["id"] != 1.0 || a["name"] != "kettle" || a["price"] != "12.50" {
		t.Errorf("snapshot row = %v, want id 1 kettle price \"12.50\"", a)
	}
	if c := goods[2].env; c.After["name"] != "spoon" || c.Before != nil || goods[2].key["id"] != 3.0 {
		t.Errorf("insert = %+v key %v, want after spoon, no before, key id 3", c, goods[2].key)
	}
	if u := goods[3].env; u.Before["price"] != "12.50" || u.After["price"] != "13.00" {
		t.Errorf("update before/after price = %v/%v, want 12.50/13.00", u.Before["price"], u.After["price"])
	}
	if d := goods[4].env; d.After != nil || d.Before["id"] != 2.0 {
		t.Errorf("delete = %+v, want before id 2 and no after", d)
	}
	src := goods[2].env.Source
	if src.Connector != "mariadb" || src.DB != "shop" || src.Table != "good" || src.Shard != 1 || src.File == "" ||
		src.Pos == 0 || src.GTID == "" || src.Snapshot != "false" || src.ServerID == 0 || src.Name != "shop" {
		t.Errorf("source = %+v, want every Debezium field set", src)
	}
	if got := strings.Join(e.tombstones, " "); got != `{"id":2}` {
		t.Errorf("tombstones = %s, want one after the delete of id 2", got)
	}
	var markers []string
	for _, m := range goods[:2] {
		markers = append(markers, m.env.Source.Snapshot)
	}
	// good is the last of the three tables (account_transaction and events
	// are empty): its first row is its table's first, its last the
	// snapshot's last.
	if strings.Join(markers, " ") != "first_in_data_collection last" {
		t.Errorf("snapshot markers = %v, want first_in_data_collection, last", markers)
	}
	for _, field := range []string{"before", "after", "source", "transaction", "op", "ts_ms", "ts_us", "ts_ns"} {
		if _, ok := goods[2].raw[field]; !ok {
			t.Errorf("envelope lacks %q: %v", field, goods[2].raw)
		}
	}
	// The same row read by the snapshot and by the binlog looks the same.
	snapKettle, _ := json.Marshal(goods[0].env.After)
	e.exec("INSERT INTO good (id, name, brand, price) VALUES (4, 'kettle', 'acme', 12.50)")
	binlog := e.consume("shop.good", 6)[5].env.After
	binlog["id"] = 1.0
	if b, _ := json.Marshal(binlog); string(b) != string(snapKettle) {
		t.Errorf("snapshot row %s and binlog row %s differ", snapKettle, b)
	}

	ev := e.consume("shop.events", 3)
	if ev[0].env.Op != OpRead || ev[0].key["order_id"] != 800.0 {
		t.Errorf("snapshot events key = %v (op %s), want order_id for a return", ev[0].key, ev[0].env.Op)
	}
	ev = ev[1:]
	if ev[0].key["order_id"] != 900.0 || ev[1].key["shop_id"] != 5.0 {
		t.Errorf("events keys = %v, %v; want order_id for a purchase, shop_id for a price change", ev[0].key, ev[1].key)
	}
	if a := ev[0].env.After; a["timestamp"] != 1760550100021.0 || a["status"] != "applied" || a["user_id"] != 7.0 {
		t.Errorf("events row = %v, want timestamp as epoch ms, status as text", a)
	}
	if ev[1].env.After["user_id"] != nil {
		t.Errorf("NULL user_id = %v, want null", ev[1].env.After["user_id"])
	}
}

func TestResumeAndIdentity(t *testing.T) {
	e := setup(t, SnapshotNever)
	stop := e.start()
	e.exec("INSERT INTO good (id, name) VALUES (1, 'a')")
	e.consume("shop.good", 1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Written while the capture is down: picked up from the checkpoint.
	e.exec("INSERT INTO good (id, name) VALUES (2, 'b')")
	e.exec("ALTER TABLE good ADD COLUMN color VARCHAR(16) NULL")
	e.exec("INSERT INTO good (id, name, color) VALUES (3, 'c', 'red')")
	stop = e.start()
	got := e.consume("shop.good", 3)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got[1].env.After["name"] != "b" || got[2].env.After["color"] != "red" {
		t.Errorf("after restart: %v, %v; want b, then c with color red", got[1].env.After, got[2].env.After)
	}
	if _, ok := got[1].env.After["color"]; ok {
		t.Errorf("row written before ADD COLUMN has color: %v", got[1].env.After)
	}

	// A position checkpoint of another server is refused.
	cps := NewCheckpoints(e.brokers, "cps")
	defer cps.Close()
	if err := cps.Save(context.Background(), Checkpoint{Shard: 1, Flavor: "mariadb", Identity: "another", File: "binlog.000001", Pos: 4}); err != nil {
		t.Fatal(err)
	}
	c := New(e.cfg, e.brokers, cps, slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(prometheus.NewRegistry()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Run(ctx); !errors.Is(err, ErrIdentityMismatch) {
		t.Errorf("Run with another server's position checkpoint = %v, want ErrIdentityMismatch", err)
	}
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b))
	return len(b), nil
}

// testLogger logs through t, so the capture's log shows with a failure.
func testLogger(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(logWriter{t}, nil)) }

func TestRotationAndShardRestart(t *testing.T) {
	e := setup(t, SnapshotNever)
	stop := e.start()
	defer stop()
	e.exec("INSERT INTO good (id, name) VALUES (1, 'a')")
	e.exec("FLUSH BINARY LOGS")
	e.exec("INSERT INTO good (id, name) VALUES (2, 'b')")
	got := e.consume("shop.good", 2)
	if got[0].env.Source.File == got[1].env.Source.File {
		t.Errorf("both rows from %s, want the second from the next binlog after FLUSH BINARY LOGS", got[0].env.Source.File)
	}
	// The shard goes away and comes back on the same data.
	if err := e.inst.Stop(); err != nil {
		t.Fatal(err)
	}
	inst, err := localdb.Start(context.Background(), e.inst.Options)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Stop() })
	db, err := inst.DB("shop")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("INSERT INTO good (id, name) VALUES (3, 'c')"); err != nil {
		t.Fatal(err)
	}
	if got := e.consume("shop.good", 3); got[2].env.After["name"] != "c" {
		t.Errorf("after the shard restarted: %v, want c", got[2].env.After)
	}
}

func TestPurgedBinlog(t *testing.T) {
	e := setup(t, SnapshotNever)
	stop := e.start()
	e.exec("INSERT INTO good (id, name) VALUES (1, 'a')")
	e.consume("shop.good", 1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var first string
	e.db.QueryRow("SHOW BINARY LOGS").Scan(&first, new(any))
	e.exec("INSERT INTO good (id, name) VALUES (2, 'b')")
	e.exec("FLUSH BINARY LOGS")
	var current string
	var pos any
	if err := e.db.QueryRow("SHOW MASTER STATUS").Scan(&current, &pos, new(any), new(any)); err != nil {
		t.Fatal(err)
	}
	// The stopped capture's dump thread may still hold the old binlog open,
	// and MariaDB does not purge a binlog in use: try until it is gone.
	for attempt := 0; ; attempt++ {
		e.exec("PURGE BINARY LOGS TO '" + current + "'")
		var oldest string
		e.db.QueryRow("SHOW BINARY LOGS").Scan(&oldest, new(any))
		if oldest == current {
			break
		}
		if attempt == 50 {
			t.Fatalf("binlog %s still there after PURGE BINARY LOGS TO %s", oldest, current)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Without when_needed: a clear error naming the missing file.
	cps := NewCheckpoints(e.brokers, "cps")
	defer cps.Close()
	c := New(e.cfg, e.brokers, cps, testLogger(t), NewMetrics(prometheus.NewRegistry()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := c.Run(ctx)
	if !errors.Is(err, ErrBinlogPurged) || !errors.Is(err, ErrFatal) || !strings.Contains(err.Error(), first) {
		t.Fatalf("Run on a purged binlog = %v, want ErrBinlogPurged naming %s", err, first)
	}

	// With when_needed: a new snapshot, then the stream.
	e.cfg.Snapshot = SnapshotWhenNeeded
	stop = e.start()
	defer stop()
	e.exec("INSERT INTO good (id, name) VALUES (3, 'c')")
	got := e.consume("shop.good", 4) // a (c, epoch 1), then the snapshot's a, b (r, epoch 2), then c (c, epoch 2)
	var ops []string
	for _, m := range got {
		ops = append(ops, m.env.Op+":"+m.env.After["name"].(string))
	}
	if strings.Join(ops, " ") != "c:a r:a r:b c:c" {
		t.Errorf("messages after the re-snapshot = %v, want the snapshot of a and b, then c", ops)
	}
}

// A transaction larger than several flushes arrives whole, and the
// checkpoint moves past it only once.
func TestLargeTransaction(t *testing.T) {
	e := setup(t, SnapshotNever)
	stop := e.start()
	defer stop()
	e.exec("INSERT INTO good (id, name, price) SELECT seq, CONCAT('g', seq), 1.00 FROM seq_1_to_20000")
	got := e.consume("shop.good", 20000)
	if got[19999].env.After["name"] != "g20000" {
		t.Errorf("last row = %v", got[19999].env.After)
	}
}

// Kafka goes away mid-stream and comes back: the capture retries from its
// checkpoint and nothing committed meanwhile is lost.
func TestKafkaRestart(t *testing.T) {
	e := setup(t, SnapshotNever)
	stop := e.start()
	defer stop()
	e.exec("INSERT INTO good (id, name) VALUES (1, 'a')")
	e.consume("shop.good", 1)
	e.cluster.Close()
	e.exec("INSERT INTO good (id, name) VALUES (2, 'b')")
	e.exec("INSERT INTO good (id, name) VALUES (3, 'c')")
	time.Sleep(8 * time.Second) // longer than kafka-go retries: the capture restarts from its checkpoint
	e.startBroker()
	if got := e.consume("shop.good", 3); got[2].env.After["name"] != "c" {
		t.Errorf("after Kafka came back: %v, want c last", got[2].env.After)
	}
}

// A GTID checkpoint taken on another server (a failover to a replica with
// the same GTID history) re-anchors instead of failing.
func TestGTIDCheckpointReanchors(t *testing.T) {
	e := setup(t, SnapshotNever)
	var gtid string
	e.db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&gtid)
	cps := NewCheckpoints(e.brokers, "cps")
	defer cps.Close()
	if err := cps.Save(context.Background(), Checkpoint{Shard: 1, Flavor: "mariadb", Identity: "the-old-primary",
		File: "old-binlog.000042", Pos: 12345, GTID: gtid}); err != nil {
		t.Fatal(err)
	}
	stop := e.start()
	defer stop()
	e.exec("INSERT INTO good (id, name) VALUES (1, 'a')")
	if got := e.consume("shop.good", 1); got[0].env.After["name"] != "a" {
		t.Errorf("after re-anchoring: %v", got[0].env.After)
	}
}
