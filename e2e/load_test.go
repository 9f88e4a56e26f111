package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/pipeline"
)

// The components of `make run` (ingest, cdc-producers, balance, cache and
// broker included) under generated load for a while
// (SHOPLEDGER_LOAD_DURATION, default 2m; 20s with -short), with the
// splitter, a worker, both cdc-producers, balance and cache killed (SIGKILL)
// at random moments along the way: after the queues drain, the audit is
// clean, every file the generator wrote went through, every account
// transaction of every shard is in Kafka, both consumers reconcile with the
// shards without a difference, and consuming every topic again from the
// first offset changes nothing.
func TestGeneratedLoad(t *testing.T) {
	d := 2 * time.Minute
	if testing.Short() {
		d = 20 * time.Second
	}
	if v := os.Getenv("SHOPLEDGER_LOAD_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("SHOPLEDGER_LOAD_DURATION: %v", err)
		}
	}
	s := startStack(t, 2, []string{"ingest", "cdc"}, "EVENTS_EVENTS_PER_BATCH=400", "EVENTS_GENERATION_INTERVAL=1s",
		"GENERATOR_SEED=7", "SPLITTER_RETURN_HOLD=10s")
	// Each third of the run kills some components at a random moment in it.
	// Kills of one consumer are at least 25 s apart: the embedded broker
	// (kfake) keeps a group member killed while its JoinGroup waits, with
	// its partitions, for good; real Kafka evicts it after the session
	// timeout (10 s).
	lastKill := map[string]time.Time{}
	for _, names := range [][]string{{"shard-splitter", "cdc-producer-0", "balance"}, {"shard-worker-1", "cache"}, {"cdc-producer-1", "balance", "cache"}} {
		start := time.Now()
		time.Sleep(rand.N(d / 3))
		for _, n := range names {
			if wait := 25*time.Second - time.Since(lastKill[n]); wait > 0 && !lastKill[n].IsZero() {
				time.Sleep(wait)
			}
			s.procs[n].Kill()
			lastKill[n] = time.Now()
		}
		t.Logf("killed %v", names)
		time.Sleep(d/3 - time.Since(start))
	}
	written := ingestFilesWritten(s)
	s.procs["ingest"].Stop(10 * time.Second)
	delete(s.procs, "ingest")
	s.waitFinished(2 * time.Minute)

	rep := s.audit()
	sum, err := s.api.Summary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	files := sum.Total / 2
	if files < written {
		t.Errorf("ingest wrote %d files, the pipeline knows %d", written, files)
	}
	if files < int(d/time.Second)/2 || rep.Files != files {
		t.Errorf("%d files registered, %d audited, over %s of load; want about one a second, all audited", files, rep.Files, d)
	}
	if sum.ByStage[pipeline.StageMySQLSender].Done != sum.Total {
		t.Errorf("summary = %+v, want every row mysql-sender done", sum)
	}
	t.Logf("%d files, %d lines: %v", rep.Files, rep.Lines, rep.Outcomes)
	s.checkCDC("account_transaction", 2*time.Minute)
	s.reconcile("balance", 2*time.Minute)
	s.reconcile("cache", 2*time.Minute)
	for _, path := range []string{"balance|/api/v1/balances?sort=-balance&limit=3", "cache|/api/v1/pending", "cache|/api/v1/counters"} {
		name, p, _ := strings.Cut(path, "|")
		s.waitReady(name) // a consumer killed last may still be restarting
		resp, err := http.Get("http://127.0.0.1:" + s.env(name, "SERVER_PORT") + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, resp.StatusCode, b)
		}
		t.Logf("GET %s: %s", p, tail(string(b), 300))
	}
	s.replayAll("balance")
	s.replayAll("cache")
	for _, outcome := range []string{"applied", "rejected", "duplicate"} {
		if rep.Outcomes[outcome] == 0 {
			t.Errorf("no line was %s: the generated data do not exercise that rule", outcome)
		}
	}
}

// ingestFilesWritten reads files_written from the generator's stats.
func ingestFilesWritten(s *stack) int {
	s.t.Helper()
	for _, e := range s.procs["ingest"].Env {
		var port int
		if n, _ := fmt.Sscanf(e, "SERVER_PORT=%d", &port); n != 1 {
			continue
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/events/stats", port))
		if err != nil {
			s.t.Fatalf("ingest stats: %v", err)
		}
		defer resp.Body.Close()
		var st struct {
			FilesWritten int `json:"files_written"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			s.t.Fatalf("ingest stats: %v", err)
		}
		return st.FilesWritten
	}
	s.t.Fatal("ingest has no SERVER_PORT")
	return 0
}
