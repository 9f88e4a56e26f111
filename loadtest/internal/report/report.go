// Package report writes what a load test found into its folder: report.md
// (the verdict first, then the settings, the machine, latency percentiles,
// throughput per stage, lag, errors and the checks' output), series.csv (a
// row per second) and PNG plots of throughput, latency and lag over time.
package report

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shopledger/shopledger/loadtest/internal/load"
)

// Files are what Write puts in the folder.
var Files = []string{"report.md", "series.csv", "throughput.png", "latency.png", "lag.png"}

// Write writes the report of res, run on m by version, into dir.
func Write(dir string, res *load.Result, m Machine, version string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "report.md"))
	if err != nil {
		return err
	}
	writeMarkdown(f, res, m, version)
	if err := f.Close(); err != nil {
		return err
	}
	if err := writeCSV(filepath.Join(dir, "series.csv"), res.Series); err != nil {
		return err
	}
	return writePlots(dir, res)
}

// Verdict is the report's first line.
func Verdict(res *load.Result) string {
	if res.OK() {
		return "PASS: the audit and both reconciliations found nothing wrong"
	}
	return "FAIL: " + strings.Join(res.Failures(), "; ")
}

// Summary is what the command prints at the end: the verdict and the main
// numbers.
func Summary(w io.Writer, res *load.Result, dir string) {
	fmt.Fprintln(w, Verdict(res))
	if !res.Drained {
		fmt.Fprintln(w, drainWarning(res))
	}
	loadSec, runSec := seconds(res)
	fmt.Fprintf(w, "offered %d events/s for %s: %d events in %d files; into the shards %.0f events/s over the run (%s load + %s drain)\n",
		res.Config.Rate, res.Config.Duration, res.Written, res.Files, float64(res.Written)/runSec, fmtDur(loadSec), fmtDur(runSec-loadSec))
	for _, l := range res.Latencies {
		if l.Name == load.LatBalance || l.Name == load.LatCache || strings.HasPrefix(l.Name, "rest_") {
			fmt.Fprintf(w, "%-22s %s\n", l.Name, quantiles(l))
		}
	}
	fmt.Fprintf(w, "report: %s\n", filepath.Join(dir, "report.md"))
}

// seconds returns the load's and the whole run's length in seconds.
func seconds(res *load.Result) (loadSec, runSec float64) {
	return res.Config.Duration.Seconds(), max(res.DrainEnd.Sub(res.Start).Seconds(), res.Config.Duration.Seconds())
}

func drainWarning(res *load.Result) string {
	return fmt.Sprintf("WARNING: the pipeline did not drain within %s (%d probes unseen): the stack could not keep up with %d events/s (see Saturation in the README)",
		res.Config.DrainTimeout, res.Unseen, res.Config.Rate)
}

func writeMarkdown(w io.Writer, res *load.Result, m Machine, version string) {
	cfg := res.Config
	fmt.Fprintf(w, "# Load test report\n\n**%s**\n\n", Verdict(res))
	for _, f := range res.Failures() {
		fmt.Fprintf(w, "- %s\n", f)
	}
	if !res.Drained {
		fmt.Fprintf(w, "\n**%s**\n", drainWarning(res))
	}
	loadSec, runSec := seconds(res)
	fmt.Fprintf(w, "\nStarted %s; load %s, drained in %s. Offered %d events/s and %d REST reads/s; "+
		"the run's events reached the shards at %.0f events/s over the run.\n",
		res.Start.UTC().Format(time.RFC3339), fmtDur(loadSec), fmtDur(runSec-loadSec), cfg.Rate, cfg.ReadRPS, float64(res.Written)/runSec)

	fmt.Fprintf(w, "\n## Settings\n\n| setting | value |\n|---|---|\n")
	rows := [][2]string{
		{"rate (RATE)", fmt.Sprintf("%d events/s", cfg.Rate)},
		{"duration (DURATION)", cfg.Duration.String()},
		{"REST reads (READ_RPS)", fmt.Sprintf("%d/s", cfg.ReadRPS)},
		{"files", fmt.Sprintf("one every %s of %d events (2 probes included), named %s to %s", cfg.FileInterval, res.EventsPerFile, res.FirstStem, res.LastStem)},
		{"bad lines", fmt.Sprintf("%.2f%% of the generated lines (%d)", 100*cfg.BadLines, res.BadLines)},
		{"world", fmt.Sprintf("%d shops, %d goods, %d users; seed %d", cfg.World.Shops, cfg.World.Goods, cfg.World.Users, cfg.Seed)},
		{"shards", fmt.Sprint(cfg.Shards)},
		{"shared folder", string(cfg.Shared)},
		{"pipeline API", cfg.PipelineURL},
		{"balance, cache", cfg.BalanceURL + ", " + cfg.CacheURL},
		{"cdc-producers", strings.Join(cfg.Producers, ", ")},
		{"drain timeout", cfg.DrainTimeout.String()},
		{"shopledger", version},
	}
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s |\n", r[0], mdEscape(r[1]))
	}

	fmt.Fprintf(w, "\n## Machine\n\n| | |\n|---|---|\n| CPU | %s |\n| cores | %d |\n| memory | %.1f GiB |\n| OS | %s |\n| kernel | %s |\n| Go | %s |\n",
		m.CPU, m.Cores, m.MemoryGB, m.OS, m.Kernel, m.Go)

	fmt.Fprintf(w, "\n## Latency\n\nHdrHistogram, 3 significant digits. A file's probes are two events whose effects only it makes "+
		"(a new user in balance, a new good in cache); their latency runs to the first REST answer that shows them "+
		"(polled every tenth of their age, at least every 25 ms). Read latencies run from each read's intended send time.\n\n")
	fmt.Fprintf(w, "| latency | count | p50 | p90 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, l := range res.Latencies {
		if l.H.TotalCount() == 0 {
			fmt.Fprintf(w, "| %s | 0 | | | | | |\n", l.What)
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s |\n", l.What, l.H.TotalCount(),
			fmtLat(l.Quantile(50)), fmtLat(l.Quantile(90)), fmtLat(l.Quantile(99)), fmtLat(l.Quantile(99.9)), fmtLat(l.Max()))
	}

	fmt.Fprintf(w, "\n## Throughput per stage\n\nEvents of this run's files per second, by the second their stage finished on every shard "+
		"(pipeline API, polled); rows (file × shard) of every producer from the pipeline API's summary; rows and changes from the components' /metrics. "+
		"Mean over the load's seconds, over the whole run (load and drain), the busiest second, and the total.\n\n")
	fmt.Fprintf(w, "| stage | unit | mean, load | mean, run | peak second | total |\n|---|---|---:|---:|---:|---:|\n")
	for _, t := range []struct {
		name, unit string
		get        func(load.Second) float64
	}{
		{"offered", "events/s", func(s load.Second) float64 { return float64(s.Offered) }},
		{"registered done (event-ingest)", "events/s", func(s load.Second) float64 { return float64(s.Written) }},
		{"shard-splitter", "events/s", func(s load.Second) float64 { return float64(s.Split) }},
		{"shard-worker", "events/s", func(s load.Second) float64 { return float64(s.Worked) }},
		{"mysql-sender: in the shards", "events/s", func(s load.Second) float64 { return float64(s.Sent) }},
		{"shard-splitter, every producer", "rows/s", func(s load.Second) float64 { return s.RowsSplit }},
		{"shard-worker, every producer", "rows/s", func(s load.Second) float64 { return s.RowsWorked }},
		{"mysql-sender, every producer", "rows/s", func(s load.Second) float64 { return s.RowsSent }},
		{"cdc-producers: published", "rows/s", func(s load.Second) float64 { return s.CDCRows }},
		{"balance: applied", "changes/s", func(s load.Second) float64 { return s.BalanceApplied }},
		{"cache: applied", "changes/s", func(s load.Second) float64 { return s.CacheApplied }},
		{"REST reads answered", "reads/s", func(s load.Second) float64 { return float64(s.Reads) }},
	} {
		st := stats(res.Series, t.get)
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %.0f |\n", t.name, t.unit, num(st.sumLoad/loadSec), num(st.total/runSec), num(st.peak), st.total)
	}

	fmt.Fprintf(w, "\n## Lag\n\n| lag | mean, load | max |\n|---|---:|---:|\n")
	for _, t := range []struct {
		name string
		get  func(load.Second) float64
	}{
		{"CDC lag, seconds (largest cdc_lag_seconds of the producers)", func(s load.Second) float64 { return s.CDCLag }},
		{"balance, messages behind (consumer_lag_messages, summed)", func(s load.Second) float64 { return s.BalanceLag }},
		{"cache, messages behind", func(s load.Second) float64 { return s.CacheLag }},
	} {
		st := stats(res.Series, t.get)
		fmt.Fprintf(w, "| %s | %s | %s |\n", t.name, num(st.meanLoad), num(st.peak))
	}

	fmt.Fprintf(w, "\n## Errors\n\n")
	fmt.Fprintf(w, "- files not written: %d%s\n", len(res.WriteErrors), list(res.WriteErrors, 10))
	fmt.Fprintf(w, "- REST reads: %d answered, %d failed, %d not sent (the client was 100,000 reads behind)%s\n",
		res.Reads, total(res.ReadErrors), res.ReadsDropped, counts(res.ReadErrors))
	fmt.Fprintf(w, "- probes: %d of %d seen%s\n", res.ProbesSeen, res.ProbesSent, counts(res.ProbeErrors))
	fmt.Fprintf(w, "- metrics not read: %d%s\n", total(res.ScrapeFailures), counts(res.ScrapeFailures))

	fmt.Fprintf(w, "\n## Checks\n\nRun after the drain, against the stack's settings.\n")
	for _, c := range res.Checks {
		fmt.Fprintf(w, "\n### %s\n\n`%s` — ", c.Name, c.Command)
		switch {
		case c.Exit < 0:
			fmt.Fprintf(w, "did not run: %s\n", c.Err)
		case c.Exit == 0:
			fmt.Fprintf(w, "passed in %s\n", c.Took.Round(time.Millisecond))
		default:
			fmt.Fprintf(w, "**failed, exit %d**, in %s\n", c.Exit, c.Took.Round(time.Millisecond))
		}
		if c.Output != "" {
			fmt.Fprintf(w, "\n```\n%s\n```\n", c.Output)
		}
	}
	fmt.Fprintf(w, "\n## Files\n\n- `series.csv`: a row per second (columns described in the README)\n"+
		"- ![throughput](throughput.png)\n- ![latency](latency.png)\n- ![lag](lag.png)\n")
}

// stat sums up one column of the series: its sums over the load and over
// the run, the largest value and the mean of the load's seconds (of those
// that could be read, for gauges).
type stat struct {
	sumLoad, total, peak, meanLoad float64
}

func stats(series []load.Second, get func(load.Second) float64) stat {
	st := stat{peak: math.NaN(), meanLoad: math.NaN()}
	n := 0
	for _, s := range series {
		v := get(s)
		if math.IsNaN(v) {
			continue
		}
		st.total += v
		if s.Phase == load.PhaseLoad {
			st.sumLoad += v
			n++
		}
		if math.IsNaN(st.peak) || v > st.peak {
			st.peak = v
		}
	}
	if n > 0 {
		st.meanLoad = st.sumLoad / float64(n)
	}
	return st
}

func quantiles(l *load.Latency) string {
	if l.H.TotalCount() == 0 {
		return "no sample"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (%d)", fmtLat(l.Quantile(50)), fmtLat(l.Quantile(90)),
		fmtLat(l.Quantile(99)), fmtLat(l.Quantile(99.9)), fmtLat(l.Max()), l.H.TotalCount())
}

// fmtLat writes a latency in ms below 10 s, in s above.
func fmtLat(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func fmtDur(sec float64) string {
	return (time.Duration(sec * float64(time.Second))).Round(100 * time.Millisecond).String()
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v >= 100 || v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, k := range load.Keys(m) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return " (" + mdEscape(strings.Join(parts, "; ")) + ")"
}

func list(items []string, n int) string {
	if len(items) == 0 {
		return ""
	}
	out := ""
	for i, s := range items {
		if i == n {
			out += fmt.Sprintf("\n  - … %d more", len(items)-n)
			break
		}
		out += "\n  - " + mdEscape(s)
	}
	return out
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
