package e2e

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/sqldb"
)

// loadTest runs the load test (make load-test's binary) against the stack
// with env (RATE=…, DURATION=…) and returns its exit code and output.
func (s *stack) loadTest(report string, env ...string) (int, string) {
	s.t.Helper()
	producers := make([]string, s.layout.Shards)
	addrs := make([]string, s.layout.Shards)
	for i := range producers {
		producers[i] = "http://127.0.0.1:" + s.env(fmt.Sprintf("cdc-producer-%d", i), "SERVER_PORT")
		addrs[i] = s.layout.ShardAddr(i)
	}
	cmd := exec.Command(filepath.Join(binDir, "loadtest"))
	cmd.Env = append(os.Environ(), "BIN_DIR="+binDir, "REPORT="+report, "SHARED_DIR="+s.layout.Shared(),
		"PIPELINE_URL=http://127.0.0.1:"+s.env("pipelineapi", "SERVER_PORT")+"/api/v1/pipeline",
		"BALANCE_URL=http://127.0.0.1:"+s.env("balance", "SERVER_PORT"), "CACHE_URL=http://127.0.0.1:"+s.env("cache", "SERVER_PORT"),
		"PRODUCERS="+strings.Join(producers, ","), fmt.Sprintf("SHARDS_COUNT=%d", s.layout.Shards), "SHARDS_ADDRS="+strings.Join(addrs, ","),
		"CONTROL_ADDR="+s.layout.ControlAddr(), "DRAIN_TIMEOUT=3m", "SEED=11")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return code, string(out)
}

// make load-test against a stack on free ports (Apache Kafka): 20 s at
// 500 events/s writes a complete report (every file, valid PNG plots, the
// numbers of every stage non-zero) and exits 0; then each consumer, stopped,
// is rebuilt from its topics and reconciles clean; then a balance row is
// corrupted and a second load test exits 1 and says why at the top of its
// report.
func TestLoadTest(t *testing.T) {
	s := startStack(t, 2, []string{"kafka"})
	s.waitReady("balance")
	s.waitReady("cache")
	dir := t.TempDir()
	clean := filepath.Join(dir, "clean")
	code, out := s.loadTest(clean, "DURATION=20s", "RATE=500", "READ_RPS=50")
	md, _ := os.ReadFile(filepath.Join(clean, "report.md"))
	if code != 0 {
		t.Fatalf("load test exit %d, want 0:\n%s\nreport:\n%s", code, tail(out, 3000), md)
	}
	t.Logf("load test:\n%s", tail(out, 1500))
	checkReport(t, clean, string(md))

	// A rebuild SIGKILLed right after it emptied the state: balance's
	// members take over from there, cache is rebuilt again; both end exact.
	for _, name := range []string{"balance", "cache"} {
		s.procs[name].Stop(15 * time.Second)
		s.killRebuild(name)
		if name == "cache" {
			out, err := s.command(name, "rebuild")
			if err != nil || !strings.Contains(out, "no difference") {
				t.Fatalf("%s rebuild: %v\n%s", name, err, tail(out, 3000))
			}
			t.Logf("%s rebuild: %s", name, tail(out, 400))
		}
		if err := s.procs[name].Start(); err != nil {
			t.Fatal(err)
		}
		s.waitReady(name)
		s.reconcile(name, time.Minute)
	}

	db, err := sqldb.Open(sqldb.Config{Addr: s.layout.ControlAddr(), User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec("UPDATE balance_db.balance SET balance = balance + 1 ORDER BY user_id LIMIT 1")
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("corrupt a balance: %v (%d rows)", err, n)
	}
	corrupt := filepath.Join(dir, "corrupt")
	code, out = s.loadTest(corrupt, "DURATION=5s", "RATE=200", "READ_RPS=10", "RECONCILE_WAIT=5s")
	md, _ = os.ReadFile(filepath.Join(corrupt, "report.md"))
	head := string(md[:min(len(md), 600)])
	if code != 1 || !strings.Contains(head, "FAIL") || !strings.Contains(head, "balance reconcile failed") {
		t.Fatalf("load test with a corrupted balance: exit %d, want 1 with the reason at the top of the report:\n%s\nreport:\n%s", code, tail(out, 2000), head)
	}
	t.Logf("with a corrupted balance: %s", strings.SplitN(head, "\n\n", 3)[1])
}

// killRebuild starts `name rebuild` and SIGKILLs it once it has emptied
// the state, retrying while the group still has the stopped member.
func (s *stack) killRebuild(name string) {
	s.t.Helper()
	for deadline := time.Now().Add(time.Minute); ; {
		cmd := exec.Command(filepath.Join(binDir, name), "rebuild")
		cmd.Env = append(os.Environ(), s.procs[name].Env...)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			s.t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			s.t.Fatal(err)
		}
		var lines []string
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.Contains(sc.Text(), "state emptied") {
				cmd.Process.Kill()
				cmd.Wait()
				s.t.Logf("%s rebuild killed after: %s", name, sc.Text())
				return
			}
		}
		cmd.Wait()
		if !strings.Contains(strings.Join(lines, "\n"), "active members") || time.Now().After(deadline) {
			s.t.Fatalf("%s rebuild ended before it emptied the state:\n%s", name, strings.Join(lines, "\n"))
		}
		time.Sleep(time.Second) // the group has not noticed the stopped member left yet
	}
}

// checkReport checks that a load test's folder holds every file: the
// report with its sections, the plots as valid PNGs, a row a second in
// series.csv with every stage's numbers non-zero.
func checkReport(t *testing.T, dir, md string) {
	t.Helper()
	for _, sec := range []string{"PASS", "## Settings", "## Machine", "## Latency", "## Throughput per stage", "## Lag", "## Errors", "## Checks",
		"| cores |", "file registered done → its probe user visible in balance"} {
		if !strings.Contains(md, sec) {
			t.Errorf("report.md has no %q", sec)
		}
	}
	for _, name := range []string{"throughput.png", "latency.png", "lag.png"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil || img.Bounds().Dx() < 100 || img.Bounds().Dy() < 100 {
			t.Errorf("%s is no plot: %v", name, err)
		}
	}
	f, err := os.Open(filepath.Join(dir, "series.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) < 21 {
		t.Fatalf("series.csv: %d rows, %v; want a header and a row a second", len(rows), err)
	}
	sums := map[string]float64{}
	for _, r := range rows[1:] {
		for i, v := range r {
			x, _ := strconv.ParseFloat(v, 64)
			sums[rows[0][i]] += x
		}
	}
	for _, col := range []string{"offered_events", "written_events", "split_events", "worker_events", "sender_events", "pipeline_sender_rows",
		"cdc_rows", "balance_applied", "cache_applied", "reads", "read_p99_ms", "e2e_balance_max_ms", "e2e_cache_max_ms"} {
		if sums[col] <= 0 {
			t.Errorf("series.csv: %s is never above 0", col)
		}
	}
	if sums["offered_events"] != 20*500 {
		t.Errorf("series.csv: %v events offered, want 20 s × 500", sums["offered_events"])
	}
}

// TestLoadTestSample makes the README's sample report: the whole product
// as `make run BROKER=kafka` runs it (ingest generating too), on free
// ports, under make load-test's defaults for SHOPLEDGER_SAMPLE_DURATION
// (60 s). It runs only when SHOPLEDGER_SAMPLE_REPORT names the folder to
// write into:
//
//	SHOPLEDGER_SAMPLE_REPORT=$PWD/docs/load-test-sample go test -run TestLoadTestSample -timeout 20m ./e2e
func TestLoadTestSample(t *testing.T) {
	dir := os.Getenv("SHOPLEDGER_SAMPLE_REPORT")
	if dir == "" {
		t.Skip("SHOPLEDGER_SAMPLE_REPORT is not set")
	}
	d := os.Getenv("SHOPLEDGER_SAMPLE_DURATION")
	if d == "" {
		d = "60s"
	}
	s := startStack(t, 2, []string{"ingest", "kafka"})
	s.waitReady("balance")
	s.waitReady("cache")
	code, out := s.loadTest(dir, "DURATION="+d, "RATE=500", "READ_RPS=50", "SEED=0")
	t.Logf("exit %d:\n%s", code, tail(out, 3000))
	if code != 0 {
		t.Fail()
	}
}
