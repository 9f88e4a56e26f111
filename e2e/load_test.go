package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/pipeline"
)

// loadDuration is how long a load test generates events:
// SHOPLEDGER_LOAD_DURATION, else def (a quarter of it with -short).
func loadDuration(t *testing.T, def time.Duration) time.Duration {
	t.Helper()
	if v := os.Getenv("SHOPLEDGER_LOAD_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SHOPLEDGER_LOAD_DURATION: %v", err)
		}
		return d
	}
	if testing.Short() {
		return def / 4
	}
	return def
}

// fault is something done to the running stack at a moment of the load.
type fault struct {
	at   time.Duration // from the start of the load
	what string
	do   func()
}

// loadStack starts the whole product as `make run` runs it, on broker
// ("kafka", "kafka3" or "cdc" for the embedded one), with ingest
// generating about 200 events a second.
func loadStack(t *testing.T, broker string, env ...string) *stack {
	env = append([]string{"EVENTS_EVENTS_PER_BATCH=400", "EVENTS_GENERATION_INTERVAL=1s", "GENERATOR_SEED=7", "SPLITTER_RETURN_HOLD=10s"}, env...)
	return startStack(t, 2, []string{"ingest", broker}, env...)
}

// runLoad lets ingest generate events for d while the faults happen, then
// stops ingest, waits for the pipeline to drain and checks that nothing was
// lost or counted twice: the audit is clean (every line of every file
// accounted for, no stuck row), every account transaction of every shard
// is in Kafka, every recorded outcome's domain event is in the outbox
// topics and no other, both consumers reconcile with the shards without a
// difference, their REST answers, and consuming every topic again from the
// first offset changes nothing.
func runLoad(t *testing.T, s *stack, d time.Duration, faults []fault) {
	slices.SortFunc(faults, func(a, b fault) int { return int(a.at - b.at) })
	start := time.Now()
	for _, f := range faults {
		time.Sleep(f.at - time.Since(start))
		f.do()
		t.Logf("%s: %s", time.Since(start).Round(100*time.Millisecond), f.what)
	}
	time.Sleep(d - time.Since(start))
	s.waitReady("ingest") // killed last, it may still be restarting
	written := ingestFilesWritten(s)
	s.procs["ingest"].Stop(10 * time.Second)
	delete(s.procs, "ingest")
	s.waitFinished(3 * time.Minute)

	rep := s.audit()
	files, err := s.scalarControl("SELECT COUNT(DISTINCT filename) FROM pipeline_db.pipeline_tracking WHERE producer <> ?", pipeline.ReleaseProducer)
	if err != nil {
		t.Fatal(err)
	}
	if files < written || files < int(d/time.Second)/2 || rep.Files != files {
		t.Errorf("%d files registered, %d audited, %d written by the last ingest, over %s of load; want about one a second, all audited",
			files, rep.Files, written, d)
	}
	t.Logf("%d files, %d lines: %v", rep.Files, rep.Lines, rep.Outcomes)
	for _, outcome := range []string{"applied", "rejected", "duplicate"} {
		if rep.Outcomes[outcome] == 0 {
			t.Errorf("no line was %s: the generated data do not exercise that rule", outcome)
		}
	}
	s.checkCDC("account_transaction", 2*time.Minute)
	checkOutboxRows(t, s)
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
}

// kill is a fault that SIGKILLs a component (its supervisor restarts it).
func kill(s *stack, name string, at time.Duration) fault {
	return fault{at: at, what: "killed " + name, do: func() { s.procs[name].Kill() }}
}

// The whole product on a real Apache Kafka broker under generated load
// (SHOPLEDGER_LOAD_DURATION, default 90 s), with every component SIGKILLed
// at random moments (the consumers and a producer twice, with no spacing:
// the broker evicts a killed group member after its session timeout), and
// a shard's and the control MariaDB server killed too (the local stack
// restarts them, the components ride through): nothing is lost or counted
// twice.
func TestGeneratedLoad(t *testing.T) {
	d := loadDuration(t, 90*time.Second)
	s := loadStack(t, "kafka")
	at := func() time.Duration { return d/10 + rand.N(d*8/10) }
	var faults []fault
	for _, name := range []string{"shard-splitter", "shard-worker-0", "shard-worker-1", "cdc-producer-0", "cdc-producer-0", "cdc-producer-1",
		"balance", "balance", "cache", "cache", "pipelineapi", "ingest"} {
		faults = append(faults, kill(s, name, at()))
	}
	for _, db := range []string{"shard0", "control"} {
		faults = append(faults, fault{at: at(), what: "killed MariaDB " + db, do: func() { s.dbs.Kill(db) }})
	}
	runLoad(t, s, d, faults)
}

// kill -9 of the Apache Kafka broker mid-stream, restarted 5 s later on
// the same data: the producers and consumers resume, nothing is lost.
func TestBrokerKilled(t *testing.T) {
	d := loadDuration(t, 40*time.Second)
	s := loadStack(t, "kafka")
	runLoad(t, s, d, []fault{{at: d / 3, what: "killed the broker; restarting it in 5 s", do: func() {
		s.kafka.Kill(0)
		time.Sleep(5 * time.Second)
		if err := s.kafka.Start(context.Background(), 0); err != nil {
			t.Fatalf("restart the broker: %v", err)
		}
	}}})
}

// A 3-broker Apache Kafka cluster, every topic replicated 3 times with
// min.insync.replicas 2 and the producers writing with acks=all: one
// broker killed mid-stream (and left down) loses nothing and the run
// completes.
func TestBrokerOfThreeKilled(t *testing.T) {
	d := loadDuration(t, 40*time.Second)
	s := loadStack(t, "kafka3")
	runLoad(t, s, d, []fault{{at: d / 3, what: "killed broker 2 of 3 for good", do: func() { s.kafka.Kill(1) }}})
	cl := &kafka.Client{Addr: kafka.TCP(s.brokers[0]), Timeout: 10 * time.Second}
	names := []string{"shop.account_transaction", "shop.events", "shop.cdc-checkpoints", "shop.balance.dead-letters", "shop.cache.dead-letters"}
	md, err := cl.Metadata(context.Background(), &kafka.MetadataRequest{Topics: names})
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range md.Topics {
		for _, p := range tp.Partitions {
			if len(p.Replicas) != 3 {
				t.Errorf("%s[%d] has %d replicas, want 3", tp.Name, p.ID, len(p.Replicas))
			}
		}
	}
	var res []kafka.DescribeConfigRequestResource
	for _, n := range names {
		res = append(res, kafka.DescribeConfigRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: n, ConfigNames: []string{"min.insync.replicas"}})
	}
	cfgs, err := cl.DescribeConfigs(context.Background(), &kafka.DescribeConfigsRequest{Resources: res})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cfgs.Resources {
		for _, e := range r.ConfigEntries {
			if e.ConfigValue != "2" {
				t.Errorf("%s min.insync.replicas = %s, want 2", r.ResourceName, e.ConfigValue)
			}
		}
	}
}

// ingestFilesWritten reads files_written from the generator's stats.
func ingestFilesWritten(s *stack) int {
	s.t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%s/api/v1/events/stats", s.env("ingest", "SERVER_PORT")))
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
