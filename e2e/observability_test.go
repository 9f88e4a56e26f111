package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shopledger/shopledger/internal/localstack"
)

// TestDashboardsAndRules runs the product under generated load (kfake, two
// shards, ingest writing a file a second, REST reads) and Debian's
// Prometheus scraping it every second with the jobs of
// deploy/prometheus/prometheus-local.yml (the SPEC §6 addresses mapped to
// the test's ports) and the alert rules of deploy/prometheus/rules. Then
// every query of every dashboard of deploy/grafana must return data, every
// rule must be loaded and evaluate without error, and every metric a rule
// names must have series (an alert's condition is rightly empty while
// nothing is wrong). With SHOPLEDGER_DASHBOARD_PNG=DIR it also plots every
// dashboard from Prometheus into DIR/<dashboard>.png (the README's images).
func TestDashboardsAndRules(t *testing.T) {
	s := startStack(t, 2, []string{"ingest", "cdc"}, "EVENTS_EVENTS_PER_BATCH=300", "EVENTS_GENERATION_INTERVAL=1s", "GENERATOR_SEED=11",
		"SPLITTER_RETURN_HOLD=10s")
	for name := range s.procs {
		s.waitReady(name)
	}
	prom := startPrometheus(t, s)
	stopReads := readLoad(s)
	defer stopReads()
	start := time.Now()

	dashboards := loadDashboards(t)
	rules := loadRules(t)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		missing := prom.check(t, dashboards, rules, start)
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s of load:\n%s", time.Since(start).Round(time.Second), strings.Join(missing, "\n"))
		}
		time.Sleep(5 * time.Second)
	}
	t.Logf("every query of %d dashboards and %d rules answered after %s of load", len(dashboards), len(rules), time.Since(start).Round(time.Second))
	if dir := os.Getenv("SHOPLEDGER_DASHBOARD_PNG"); dir != "" {
		time.Sleep(4 * time.Minute) // a few minutes of curves
		for _, d := range dashboards {
			path := filepath.Join(dir, strings.TrimSuffix(filepath.Base(d.file), ".json")+".png")
			if err := prom.plot(d, start, time.Now(), path); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s", path)
		}
	}
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	file   string
	Title  string `json:"title"`
	Panels []struct {
		Title       string `json:"title"`
		FieldConfig struct {
			Defaults struct {
				Unit string `json:"unit"`
			} `json:"defaults"`
		} `json:"fieldConfig"`
		Targets []struct {
			Expr         string `json:"expr"`
			LegendFormat string `json:"legendFormat"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, _ := filepath.Glob("../deploy/grafana/dashboards/*.json")
	if len(files) == 0 {
		t.Fatal("no dashboard in deploy/grafana/dashboards")
	}
	var out []dashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := dashboard{file: f}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, d)
	}
	return out
}

// rule is an alert or recording rule of deploy/prometheus/rules.
type rule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	files, _ := filepath.Glob("../deploy/prometheus/rules/*.yml")
	var out []rule
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf struct {
			Groups []struct {
				Rules []rule `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			out = append(out, g.Rules...)
		}
	}
	if len(out) == 0 {
		t.Fatal("no rule in deploy/prometheus/rules")
	}
	return out
}

// prometheus is a running Prometheus server.
type prometheus struct {
	base string
}

// specPorts maps the SPEC §6 ports of prometheus-local.yml to the stack's
// processes.
func specPorts(shards int) map[int]string {
	m := map[int]string{8080: "ingest", 8082: "pipelineapi", 8083: "balance", 8084: "cache", 8085: "shard-splitter"}
	for i := range shards {
		m[8090+i] = fmt.Sprintf("shard-worker-%d", i)
		m[8100+i] = fmt.Sprintf("cdc-producer-%d", i)
	}
	return m
}

// startPrometheus starts Debian's prometheus on a free port with the
// local scrape configuration, pointed at the stack, every second.
func startPrometheus(t *testing.T, s *stack) *prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not found: run `make tools` (it installs Debian's prometheus package): %v", err)
	}
	dir := t.TempDir()
	raw, err := os.ReadFile("../deploy/prometheus/prometheus-local.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["global"] = map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"}
	ports := specPorts(s.layout.Shards)
	for _, sc := range cfg["scrape_configs"].([]any) {
		for _, st := range sc.(map[string]any)["static_configs"].([]any) {
			targets := st.(map[string]any)["targets"].([]any)
			for i, tg := range targets {
				_, p, _ := strings.Cut(tg.(string), ":")
				port, _ := strconv.Atoi(p)
				name, ok := ports[port]
				if !ok || s.procs[name] == nil {
					t.Fatalf("prometheus-local.yml target %s is no process of the stack", tg)
				}
				targets[i] = "127.0.0.1:" + s.env(name, "SERVER_PORT")
			}
		}
	}
	out, _ := yaml.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "rules"), os.DirFS("../deploy/prometheus/rules")); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("prometheus log (tail):\n%s", lastBytes(b, 5000))
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := localstack.WaitHTTP(ctx, "http://"+addr+"/-/ready"); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s on %s", strings.TrimSpace(version(bin)), addr)
	return &prometheus{base: "http://" + addr}
}

func version(bin string) string {
	out, _ := exec.Command(bin, "--version").Output()
	first, _, _ := strings.Cut(string(out), "\n")
	return first
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// readLoad sends a few REST reads a second to every API, some of them for
// things that do not exist, until stop.
func readLoad(s *stack) (stop func()) {
	port := func(name string) string { return "http://127.0.0.1:" + s.env(name, "SERVER_PORT") }
	paths := []func() string{
		func() string { return port("balance") + fmt.Sprintf("/api/v1/balances/%d", rand.IntN(60)) },
		func() string { return port("balance") + "/api/v1/balances?limit=20&sort=-balance" },
		func() string { return port("cache") + fmt.Sprintf("/api/v1/shops/%d", rand.IntN(30)) },
		func() string {
			return port("cache") + fmt.Sprintf("/api/v1/shops/%d/goods/%d", rand.IntN(30), rand.IntN(30))
		},
		func() string { return port("cache") + "/api/v1/pending" },
		func() string { return port("cache") + "/api/v1/counters" },
		func() string { return port("pipelineapi") + "/api/v1/pipeline/metrics/summary" },
		func() string { return port("ingest") + "/api/v1/events/stats" },
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			for _, p := range paths {
				if resp, err := http.Get(p()); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// apiResult is a query answer of Prometheus' HTTP API.
type apiResult struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
			Values [][]any           `json:"values"`
		} `json:"result"`
		Groups []struct {
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"data"`
}

func (p *prometheus) get(path string, q url.Values) (apiResult, error) {
	var r apiResult
	resp, err := http.Get(p.base + path + "?" + q.Encode())
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	if r.Status != "success" {
		return r, fmt.Errorf("%s %s: %s", path, q.Get("query"), r.Error)
	}
	return r, nil
}

// rangeQuery evaluates expr every step from start to end.
func (p *prometheus) rangeQuery(expr string, start, end time.Time, step time.Duration) (apiResult, error) {
	return p.get("/api/v1/query_range", url.Values{"query": {expr}, "start": {unix(start)}, "end": {unix(end)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}})
}

func unix(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64) }

// hasNumber reports whether a range answer holds at least one number (a
// histogram quantile without observations is NaN, which is no data).
func hasNumber(r apiResult) bool {
	for _, s := range r.Data.Result {
		for _, v := range s.Values {
			if str, ok := v[1].(string); ok {
				if f, err := strconv.ParseFloat(str, 64); err == nil && !math.IsNaN(f) {
					return true
				}
			}
		}
	}
	return false
}

var metricName = regexp.MustCompile(`\b(shopledger_[a-z0-9_]+|up)\b`)

// check returns what does not answer yet: dashboard queries without data
// since start, rules not loaded or failing, metrics of rules without series.
func (p *prometheus) check(t *testing.T, dashboards []dashboard, rules []rule, start time.Time) []string {
	t.Helper()
	var missing []string
	for _, d := range dashboards {
		for _, panel := range d.Panels {
			for _, tg := range panel.Targets {
				r, err := p.rangeQuery(tg.Expr, start, time.Now(), time.Second)
				switch {
				case err != nil:
					t.Fatalf("dashboard %q, panel %q: %v", d.Title, panel.Title, err)
				case !hasNumber(r):
					missing = append(missing, fmt.Sprintf("dashboard %q, panel %q: no data for %s", d.Title, panel.Title, tg.Expr))
				}
			}
		}
	}
	names := map[string]bool{}
	for _, r := range rules {
		if _, err := p.get("/api/v1/query", url.Values{"query": {r.Expr}}); err != nil {
			t.Fatalf("rule %s: %v", r.Alert, err)
		}
		for _, n := range metricName.FindAllString(r.Expr, -1) {
			names[n] = true
		}
	}
	for _, n := range slices.Sorted(maps.Keys(names)) {
		r, err := p.rangeQuery("count("+n+")", start, time.Now(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !hasNumber(r) {
			missing = append(missing, "rules: no series of "+n+" since the load began")
		}
	}
	r, err := p.get("/api/v1/rules", nil)
	if err != nil {
		t.Fatal(err)
	}
	loaded := 0
	for _, g := range r.Data.Groups {
		for _, rl := range g.Rules {
			loaded++
			if rl.Health == "err" {
				t.Fatalf("rule %s fails: %s", rl.Name, rl.LastError)
			}
			if rl.Health != "ok" {
				missing = append(missing, fmt.Sprintf("rule %s: health %q", rl.Name, rl.Health))
			}
		}
	}
	if loaded != len(rules) {
		missing = append(missing, fmt.Sprintf("Prometheus has %d rules loaded, deploy/prometheus/rules has %d", loaded, len(rules)))
	}
	return missing
}
