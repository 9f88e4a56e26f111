// Package e2e runs the product's processes, as built binaries, against real
// MariaDB instances with binlog: the acceptance tests of the file pipeline
// and its benchmark.
package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/audit"
	"github.com/shopledger/shopledger/internal/localdb"
	"github.com/shopledger/shopledger/internal/localkafka"
	"github.com/shopledger/shopledger/internal/localstack"
	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/shard"
	"github.com/shopledger/shopledger/internal/spool"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/internal/topics"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shopledger-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "../pipelineapi", "../ingest", "../shard-splitter", "../shard-worker", "../cdc-producer", "../balance", "../cache", "../audit", "../loadtest")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// stack is the file pipeline running for one test.
type stack struct {
	t       testing.TB
	brokers []string            // the broker's, when the stack runs cdc-producers
	kafka   *localkafka.Cluster // Apache Kafka, when the stack runs on it
	layout  localstack.Layout
	dbs     *localstack.Databases
	procs   map[string]*localstack.Process
	api     *pipeline.Client
	spool   spool.Dir
	logs    string
	shards  []*sql.DB
	ep      localstack.Endpoints // the components' ports
}

func freePort(t testing.TB) int {
	t.Helper()
	p, err := localdb.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startStack starts the databases and the file pipeline's components, plus
// ingest if run names it, and a broker with the cdc-producers and both
// consumers if run names one: "cdc" the embedded broker (kfake), "kafka" a
// real Apache Kafka broker, "kafka3" a 3-broker Apache Kafka cluster with
// every topic replicated 3 times and min.insync.replicas 2. env (KEY=value)
// goes to every component, each reading the keys it knows.
func startStack(t testing.TB, shards int, run []string, env ...string) *stack {
	t.Helper()
	root, err := os.MkdirTemp("", "shopledger-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	l := localstack.Layout{Root: root, Shards: shards, ControlPort: freePort(t), SmallServers: true}
	for range shards {
		l.ShardPorts = append(l.ShardPorts, freePort(t))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dbs, err := localstack.StartDatabases(ctx, l, t.Logf)
	if err != nil {
		os.RemoveAll(root)
		t.Fatal(err)
	}
	s := &stack{t: t, layout: l, dbs: dbs, procs: map[string]*localstack.Process{}, spool: spool.Dir(l.Shared()),
		logs: filepath.Join(root, "components.log")}
	logFile, err := os.Create(s.logs)
	if err != nil {
		t.Fatal(err)
	}
	pipelinePort := freePort(t)
	base := append([]string{"WORKER_POLL_INTERVAL=100ms", "SPLITTER_POLL_INTERVAL=100ms", "LOGGING_LEVEL=info"}, env...)
	ep := localstack.Endpoints{PipelinePort: pipelinePort, IngestPort: freePort(t), BalancePort: freePort(t), CachePort: freePort(t),
		SplitterPort: freePort(t)}
	for range shards {
		ep.WorkerPorts = append(ep.WorkerPorts, freePort(t))
		ep.ProducerPorts = append(ep.ProducerPorts, freePort(t))
	}
	switch {
	case contains(run, "kafka"), contains(run, "kafka3"):
		settings, nodes := topics.DefaultSettings, 1
		if contains(run, "kafka3") {
			settings.ReplicationFactor, settings.MinInsyncReplicas, nodes = 3, 2, 3
			base = append(base, "KAFKA_REPLICATION_FACTOR=3", "KAFKA_MIN_INSYNC_REPLICAS=2")
		}
		s.kafka = stacktest.Kafka(t, nodes)
		s.brokers = s.kafka.Brokers()
		if err := topics.Ensure(ctx, s.brokers, settings.CDC(topics.DefaultPrefix, topics.CDCTables)...); err != nil {
			t.Fatal(err)
		}
		ep.Brokers = strings.Join(s.brokers, ",")
	case contains(run, "cdc"):
		broker, err := localstack.StartBroker(ctx, 0, "", topics.DefaultSettings.CDC(topics.DefaultPrefix, topics.CDCTables)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(broker.Close)
		s.brokers = broker.Addrs()
		ep.Brokers = strings.Join(s.brokers, ",")
	}
	s.ep = ep
	procs := localstack.Components(l, binDir, &localstack.PrefixWriter{W: logFile}, ep, nil)
	s.api = pipeline.NewClient(pipeline.ClientConfig{URL: fmt.Sprintf("http://127.0.0.1:%d/api/v1/pipeline", pipelinePort)})
	t.Cleanup(func() {
		for i := len(procs) - 1; i >= 0; i-- {
			if s.procs[procs[i].Name] != nil {
				procs[i].Stop(15 * time.Second)
			}
		}
		for _, db := range s.shards {
			db.Close()
		}
		dbs.Stop()
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(s.logs); err == nil {
				if len(b) > 20000 {
					b = b[len(b)-20000:]
				}
				t.Logf("component logs (tail):\n%s", b)
			}
			kept := filepath.Join(os.TempDir(), "shopledger-e2e-"+strings.ReplaceAll(t.Name(), "/", "_")+".log")
			if b, err := os.ReadFile(s.logs); err == nil && os.WriteFile(kept, b, 0o644) == nil {
				t.Logf("all component logs: %s", kept)
			}
		}
		os.RemoveAll(root)
	})
	for _, p := range procs {
		p.Env = append(p.Env, base...)
		if p.Name == "ingest" && s.brokers != nil {
			// Domain events (the outbox) go out from a producer's first
			// snapshot on: the producers stream before any file comes.
			for i := range shards {
				s.waitReady(fmt.Sprintf("cdc-producer-%d", i))
			}
		}
		if p.Name == "ingest" && !contains(run, "ingest") {
			continue
		}
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		s.procs[p.Name] = p
		if p.Name == "pipelineapi" {
			wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := localstack.WaitHTTP(wctx, fmt.Sprintf("http://127.0.0.1:%d/ready", pipelinePort))
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range shards {
		db, err := sqldb.Open(sqldb.Config{Addr: l.ShardAddr(i), User: "root", Database: "shop"})
		if err != nil {
			t.Fatal(err)
		}
		s.shards = append(s.shards, db)
	}
	return s
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// produce writes an events file as any producer must: register, write
// under a temporary name and rename, mark event-ingest done. No lines make
// an empty file.
func (s *stack) produce(stem string, lines []string) {
	s.t.Helper()
	ctx := context.Background()
	if _, err := s.api.Register(ctx, stem, shard.All(s.layout.Shards), "e2e"); err != nil {
		s.t.Fatal(err)
	}
	w, err := spool.Create(s.spool.EventsFile(stem))
	if err != nil {
		s.t.Fatal(err)
	}
	if len(lines) > 0 {
		w.WriteString(strings.Join(lines, "\n") + "\n")
	}
	if err := w.Commit(); err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.api.IngestDone(ctx, stem); err != nil {
		s.t.Fatal(err)
	}
}

// waitFinished waits until every registered (file, shard) is mysql-sender
// done, and fails the test if any stage failed or time ran out.
func (s *stack) waitFinished(timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		sum, err := s.api.Summary(context.Background())
		if err == nil {
			failed := 0
			for _, st := range sum.ByStage {
				failed += st.Failed
			}
			if failed > 0 {
				s.t.Fatalf("a stage failed: %+v", sum.ByStage)
			}
			if sum.Total > 0 && sum.ByStage[pipeline.StageMySQLSender].Done == sum.Total {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("pipeline not finished after %s: %+v (err %v)", timeout, sum, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// auditSources are the stack's databases, read as the audit's least-privilege
// user, and shared folder.
func (s *stack) auditSources() audit.Sources {
	s.t.Helper()
	open := func(addr, db string) *sql.DB {
		d, err := sqldb.Open(sqldb.Config{Addr: addr, User: "reader", Database: db})
		if err != nil {
			s.t.Fatal(err)
		}
		s.t.Cleanup(func() { d.Close() })
		return d
	}
	src := audit.Sources{Spool: s.spool, Pipeline: open(s.layout.ControlAddr(), "pipeline_db"), Splitter: open(s.layout.ControlAddr(), "splitter_db")}
	for i := range s.layout.Shards {
		src.Shards = append(src.Shards, open(s.layout.ShardAddr(i), "shop"))
	}
	return src
}

// audit runs the audit over the stack and fails the test on any problem.
func (s *stack) audit() *audit.Report {
	s.t.Helper()
	rep, err := audit.Run(context.Background(), s.auditSources())
	if err != nil {
		s.t.Fatal(err)
	}
	if !rep.OK() {
		var b strings.Builder
		rep.Print(&b)
		s.t.Fatalf("audit:\n%s", b.String())
	}
	return rep
}

// query returns the single value of a query on shard i.
func (s *stack) scalar(i int, query string, args ...any) string {
	s.t.Helper()
	var v sql.NullString
	if err := s.shards[i].QueryRow(query, args...).Scan(&v); err != nil {
		s.t.Fatalf("shard %d: %s: %v", i, query, err)
	}
	return v.String
}

// scalarControl returns the integer a query on the control instance
// (as root, any database) answers.
func (s *stack) scalarControl(query string, args ...any) (int, error) {
	db, err := sqldb.Open(sqldb.Config{Addr: s.layout.ControlAddr(), User: "root"})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int
	return n, db.QueryRow(query, args...).Scan(&n)
}
