package load

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shopledger/shopledger/internal/pipeline"
)

// The components' own view, read every second: the cdc-producers',
// balance's and cache's Prometheus /metrics (rows published, CDC lag,
// changes applied, consumer lag) and the pipeline API's summary (rows done
// per stage, every producer's files included). Metric names are matched
// with or without the shopledger_ prefix.

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the Prometheus text format: name{labels} value.
func parseMetrics(sc *bufio.Scanner) []sample {
	var out []sample
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		head, val, ok := cutLast(line)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		s := sample{labels: map[string]string{}, value: v}
		name, rest, hasLabels := strings.Cut(head, "{")
		s.name = strings.TrimPrefix(name, "shopledger_")
		if hasLabels {
			for _, kv := range splitLabels(strings.TrimSuffix(rest, "}")) {
				k, v, _ := strings.Cut(kv, "=")
				s.labels[k] = strings.Trim(v, `"`)
			}
		}
		out = append(out, s)
	}
	return out
}

// cutLast splits "head value" (a timestamp after the value is not used by
// the components).
func cutLast(line string) (head, value string, ok bool) {
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		return "", "", false
	}
	return line[:i], line[i+1:], true
}

// splitLabels splits a="x",b="y" on the commas outside quotes.
func splitLabels(s string) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\':
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == ',' && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// sum adds the samples named name whose labels include want.
func sum(ss []sample, name string, want map[string]string) (float64, bool) {
	total, found := 0.0, false
	for _, s := range ss {
		if s.name != name {
			continue
		}
		match := true
		for k, v := range want {
			match = match && s.labels[k] == v
		}
		if match {
			total, found = total+s.value, true
		}
	}
	return total, found
}

// largest is the largest sample named name.
func largest(ss []sample, name string) (float64, bool) {
	m, found := math.Inf(-1), false
	for _, s := range ss {
		if s.name == name {
			m, found = max(m, s.value), true
		}
	}
	return m, found
}

// scraper reads the components' metrics every second into the series.
type scraper struct {
	cfg  *Config
	rec  *recorder
	api  *pipeline.Client
	cl   *http.Client
	prev map[string]float64 // counters at the previous scrape
	at   time.Time          // of the previous scrape

	mu       sync.Mutex
	failures map[string]int
	last     gauges
}

// gauges are the latest readings, for the progress line and the drain.
type gauges struct {
	cdcLag, balanceLag, cacheLag float64
}

func newScraper(cfg *Config, rec *recorder, api *pipeline.Client) *scraper {
	return &scraper{cfg: cfg, rec: rec, api: api, cl: &http.Client{Timeout: 3 * time.Second}, prev: map[string]float64{},
		failures: map[string]int{}, last: gauges{math.NaN(), math.NaN(), math.NaN()}}
}

func (s *scraper) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		s.once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// once reads everything and records rates (per second since the previous
// reading) and gauges in the current second's row.
func (s *scraper) once(ctx context.Context) {
	now := time.Now()
	elapsed := now.Sub(s.at).Seconds()
	first := s.at.IsZero()
	s.at = now
	counters := map[string]float64{}
	g := gauges{math.NaN(), math.NaN(), math.NaN()}
	cdcOK := len(s.cfg.Producers) > 0
	for i, u := range s.cfg.Producers {
		ss, err := s.get(ctx, u+"/metrics")
		if err != nil {
			s.fail(fmt.Sprintf("cdc-producer %d /metrics", i), err)
			cdcOK = false
			continue
		}
		// A counter not exported yet (no row published) is at 0.
		v, _ := sum(ss, "cdc_rows_total", nil)
		counters[fmt.Sprintf("cdc%d", i)] = v
		if v, ok := largest(ss, "cdc_lag_seconds"); ok {
			g.cdcLag = max(v, nanTo(g.cdcLag, v))
		}
	}
	for _, c := range []struct {
		name, url string
		lag       *float64
	}{{"balance", s.cfg.BalanceURL, &g.balanceLag}, {"cache", s.cfg.CacheURL, &g.cacheLag}} {
		ss, err := s.get(ctx, c.url+"/metrics")
		if err != nil {
			s.fail(c.name+" /metrics", err)
			continue
		}
		counters[c.name], _ = sum(ss, "consumer_changes_total", map[string]string{"result": "applied"})
		if v, ok := sum(ss, "consumer_lag_messages", nil); ok {
			*c.lag = v
		}
	}
	if sum, err := s.api.Summary(ctx); err != nil {
		s.fail("pipeline API summary", err)
	} else {
		counters["split"] = float64(sum.ByStage[pipeline.StageShardSplitter].Done)
		counters["worked"] = float64(sum.ByStage[pipeline.StageShardWorker].Done)
		counters["sent"] = float64(sum.ByStage[pipeline.StageMySQLSender].Done)
	}
	rate := func(k string) float64 {
		v, ok := counters[k]
		p, had := s.prev[k]
		if !ok || !had || first {
			return math.NaN()
		}
		if v < p { // restarted: counting from 0 again
			p = 0
		}
		return (v - p) / elapsed
	}
	s.rec.update(now, func(r *Second) {
		if cdcOK {
			total := 0.0
			for i := range s.cfg.Producers {
				total += nanTo(rate(fmt.Sprintf("cdc%d", i)), 0)
			}
			if !first {
				r.CDCRows = total
			}
		}
		r.BalanceApplied, r.CacheApplied = rate("balance"), rate("cache")
		r.RowsSplit, r.RowsWorked, r.RowsSent = rate("split"), rate("worked"), rate("sent")
		r.CDCLag, r.BalanceLag, r.CacheLag = g.cdcLag, g.balanceLag, g.cacheLag
	})
	for k, v := range counters {
		s.prev[k] = v
	}
	s.mu.Lock()
	s.last = g
	s.mu.Unlock()
}

func (s *scraper) get(ctx context.Context, url string) ([]sample, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := s.cl.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return parseMetrics(sc), sc.Err()
}

func (s *scraper) fail(what string, err error) {
	s.mu.Lock()
	s.failures[what+": "+errKind(err)]++
	s.mu.Unlock()
}

func (s *scraper) gauges() gauges {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// nanTo returns v, or or when v is NaN.
func nanTo(v, or float64) float64 {
	if math.IsNaN(v) {
		return or
	}
	return v
}
