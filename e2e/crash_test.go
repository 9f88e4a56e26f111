package e2e

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/eventgen"
)

// kill -9 of a shard worker in the middle of a large file, and of the other
// one while it prepares, then restart: the audit is clean and the shards
// equal an independent recomputation of the rules from the event files.
// Both cdc-producers are killed too while the workers apply (on Apache
// Kafka): the outbox topics hold exactly the domain events of the
// recomputed outcomes, one distinct id each, repeats only as exact
// redeliveries, and every payload matches its shard's rows.
func TestKillWorkerMidFile(t *testing.T) {
	lines := 40000
	if testing.Short() {
		lines = 8000
	}
	s := startStack(t, 2, []string{"kafka"}, "WORKER_BATCH_SIZE=250", "WORKER_INITIAL_BALANCE=1000")
	gen := eventgen.New(eventgen.World{Shops: 20, Goods: 50, Users: 300}, 42)
	m := newModel(2, 100000)
	files := []string{"20251101000000", "20251101000001"}
	at := time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)
	small := gen.Batch(files[0], at, 500)
	big := gen.Batch(files[1], at.Add(time.Second), lines)
	m.file(files[0], small)
	m.file(files[1], big)

	s.produce(files[0], splitLines(small))
	s.waitFinished(time.Minute)
	s.produce(files[1], splitLines(big))

	// Kill worker 0 once it has committed part of the big file.
	waitFor(t, 2*time.Minute, "shard 0 to apply part of the big file", func() bool {
		n, _ := strconv.Atoi(s.scalar(0, "SELECT COUNT(*) FROM events WHERE source_file = ?", files[1]))
		return n > lines/10
	})
	before, _ := strconv.Atoi(s.scalar(0, "SELECT COUNT(*) FROM events WHERE source_file = ?", files[1]))
	s.procs["shard-worker-0"].Kill()
	t.Logf("killed shard-worker-0 with %d of the big file's lines recorded on shard 0", before)
	s.procs["cdc-producer-0"].Kill()
	s.procs["shard-worker-1"].Kill()
	s.procs["cdc-producer-1"].Kill()
	// Once more each while the restarted workers apply the rest.
	for _, p := range []string{"cdc-producer-0", "cdc-producer-1"} {
		s.waitReady(p)
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
		s.procs[p].Kill()
		t.Logf("killed %s again", p)
	}
	s.waitFinished(5 * time.Minute)
	after, _ := strconv.Atoi(s.scalar(0, "SELECT COUNT(*) FROM events WHERE source_file = ?", files[1]))
	if before >= after {
		t.Fatalf("the kill came after shard 0 had recorded all %d lines of the big file: nothing was interrupted", after)
	}

	s.audit()
	if diffs := m.compare(s); len(diffs) > 0 {
		for _, d := range diffs {
			t.Error(d)
		}
	}
	checkOutbox(t, s, m)
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
