package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
)

// What the server lacks of a checkpoint's GTID history, for both flavors
// (MySQL 8 shapes included: several UUIDs, intervals).
func TestBehind(t *testing.T) {
	u1, u2 := "3e11fa47-71ca-11e1-9e33-c80aa9429562", "4e11fa47-71ca-11e1-9e33-c80aa9429562"
	cases := []struct {
		flavor, checkpoint, server string
		behind                     bool
	}{
		{"mariadb", "0-11-100", "0-11-100", false},
		{"mariadb", "0-11-100", "0-11-150", false},
		{"mariadb", "0-11-100", "0-12-150", false}, // a failover: same domain, another server id, further on
		{"mariadb", "0-11-100", "0-11-99", true},   // restored, or a failover that lost a transaction
		{"mariadb", "0-11-100", "", true},          // RESET MASTER
		{"mariadb", "0-11-100,1-11-5", "0-11-100", true},
		{"mysql", u1 + ":1-100", u1 + ":1-120", false},
		{"mysql", u1 + ":1-100", u1 + ":1-120," + u2 + ":1-5", false},
		{"mysql", u1 + ":1-100", u1 + ":1-99", true},
		{"mysql", u1 + ":1-100," + u2 + ":1-3", u1 + ":1-100", true},
		{"mysql", u1 + ":1-100", "", true},
	}
	for _, c := range cases {
		lost, err := behind(c.flavor, c.checkpoint, c.server)
		if err != nil {
			t.Errorf("behind(%s, %q, %q): %v", c.flavor, c.checkpoint, c.server, err)
			continue
		}
		if (lost != "") != c.behind {
			t.Errorf("behind(%s, %q, %q) = %q, want behind %v", c.flavor, c.checkpoint, c.server, lost, c.behind)
		}
	}
}

// A server behind its checkpoint (here RESET MASTER; a restored backup or a
// failover that lost transactions look the same) is never resumed from as
// if nothing happened: without when_needed the capture stops with an error
// saying so; with it, it takes a new snapshot of a new epoch, and the
// changes after it carry that epoch too.
func TestServerBehindCheckpoint(t *testing.T) {
	e := setup(t, SnapshotInitial)
	e.exec("INSERT INTO good (id, name) VALUES (1, 'a')")
	stop := e.start()
	e.exec("INSERT INTO good (id, name) VALUES (2, 'b')")
	got := e.consume("shop.good", 2)
	if got[0].env.Source.Epoch != 1 || got[1].env.Source.Epoch != 1 {
		t.Fatalf("first epoch: %d, %d; want 1", got[0].env.Source.Epoch, got[1].env.Source.Epoch)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	e.exec("RESET MASTER")
	e.exec("INSERT INTO good (id, name) VALUES (3, 'c')")

	cps := NewCheckpoints(e.brokers, "cps")
	defer cps.Close()
	c := New(e.cfg, e.brokers, cps, testLogger(t), NewMetrics(prometheus.NewRegistry()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Run(ctx); !errors.Is(err, ErrDiverged) || !errors.Is(err, ErrFatal) || !strings.Contains(err.Error(), "when_needed") {
		t.Fatalf("Run on a server behind its checkpoint = %v, want ErrDiverged", err)
	}

	e.cfg.Snapshot = SnapshotWhenNeeded
	stop = e.start()
	defer stop()
	e.exec("INSERT INTO good (id, name) VALUES (4, 'd')")
	got = e.consume("shop.good", 2+3+1)
	var tail []string
	for _, m := range got[2:] {
		tail = append(tail, fmt.Sprintf("%s:%v:%d", m.env.Op, m.env.After["name"], m.env.Source.Epoch))
	}
	if strings.Join(tail, " ") != "r:a:2 r:b:2 r:c:2 c:d:2" {
		t.Errorf("after RESET MASTER: %v, want a snapshot of a, b, c and then d, all of epoch 2", tail)
	}
}

// A snapshot cut short (the capture stopped mid-way) is taken again, from
// the start and as a new epoch, so that consumers drop the rows the first
// attempt published.
func TestInterruptedSnapshotTakesANewEpoch(t *testing.T) {
	const n = 50_000
	e := setup(t, SnapshotInitial)
	e.exec(fmt.Sprintf("INSERT INTO good (id, name, price) SELECT seq, CONCAT('g', seq), 1.00 FROM seq_1_to_%d", n))
	e.cfg.FlushRows = 500
	cps := NewCheckpoints(e.brokers, "cps")
	c := New(e.cfg, e.brokers, cps, testLogger(t), NewMetrics(prometheus.NewRegistry()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	for testutil.ToFloat64(c.metrics.rows.WithLabelValues("good", OpRead)) < 5000 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	cps.Close()
	loader := NewCheckpoints(e.brokers, "cps")
	cp, ok, err := loader.Load(context.Background(), 1)
	loader.Close()
	if err != nil || !ok || !cp.Snapshotting || cp.Epoch != 1 {
		t.Fatalf("checkpoint after an interrupted snapshot = %+v, %v, %v; want a snapshot of epoch 1 under way", cp, ok, err)
	}
	stop := e.start()
	defer stop()
	e.exec("INSERT INTO good (id, name) VALUES (900000, 'late')")

	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics("shop.good"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	byEpoch := map[int64]map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for len(byEpoch[2]) < n+1 && time.Now().Before(deadline) {
		pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			var env Envelope
			if err := json.Unmarshal(r.Value, &env); err != nil {
				t.Fatal(err)
			}
			if byEpoch[env.Source.Epoch] == nil {
				byEpoch[env.Source.Epoch] = map[string]bool{}
			}
			byEpoch[env.Source.Epoch][fmt.Sprint(env.After["id"], env.Op)] = true
		})
		pcancel()
	}
	if len(byEpoch[1]) == 0 || len(byEpoch[1]) >= n {
		t.Errorf("%d rows of the interrupted snapshot (epoch 1) published, want some but not all %d", len(byEpoch[1]), n)
	}
	if len(byEpoch[2]) != n+1 || !byEpoch[2]["900000c"] || !byEpoch[2]["1r"] {
		t.Errorf("%d changes of epoch 2, want the whole snapshot again (%d rows) and the insert after it", len(byEpoch[2]), n)
	}
}

// A long write on the shard keeps the snapshot's global read lock from
// being granted; meanwhile every other write would wait behind it. The lock is
// given up after snapshot_lock_timeout and tried again later, so writes
// wait that long at most, and the snapshot happens once the query is done.
func TestSnapshotLockGivesWay(t *testing.T) {
	e := setup(t, SnapshotInitial)
	e.cfg.SnapshotLockTimeout = time.Second
	e.exec("INSERT INTO good (id, name) VALUES (1, 'a')")
	long := make(chan error, 1)
	go func() {
		_, err := e.db.Exec("UPDATE good SET price = price + 1 WHERE SLEEP(12) = 0") // one row: a 12 s write
		long <- err
	}()
	time.Sleep(300 * time.Millisecond)
	cps := NewCheckpoints(e.brokers, "cps")
	defer cps.Close()
	c := New(e.cfg, e.brokers, cps, testLogger(t), NewMetrics(prometheus.NewRegistry()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(500 * time.Millisecond) // the snapshot waits for its lock
	start := time.Now()
	e.exec("INSERT INTO events (event_key, event_type, shard, status, source_file, source_line) VALUES ('w', 0, 1, 'applied', 'f', 1)")
	if waited := time.Since(start); waited > 6*time.Second {
		t.Errorf("a write waited %s behind the snapshot's lock, want at most about its timeout (1 s)", waited.Round(time.Millisecond))
	}
	if err := <-long; err != nil {
		t.Fatal(err)
	}
	if got := e.consume("shop.good", 1); got[0].env.Op != OpRead {
		t.Errorf("after the long query: %+v, want the snapshot", got[0].env)
	}
}
