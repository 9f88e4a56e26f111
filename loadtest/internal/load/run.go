// Package load drives a running shopledger stack through its public entry
// points and measures it: events files written as a producer writes them
// (SPEC §2: registered with the pipeline API, written under a temporary
// name, marked done) at a given rate with probes whose effects show when
// they have gone through the whole product, REST reads of balance and
// cache at a given rate, the components' metrics every second; then it
// waits for the pipeline to drain and runs the audit and both
// reconciliations. Package report writes what it found.
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shopledger/shopledger/internal/eventgen"
	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/spool"
)

// Config is what a run does and where the stack is.
type Config struct {
	Rate         int           // events a second, offered
	Duration     time.Duration // of the load
	ReadRPS      int           // REST reads a second, offered
	FileInterval time.Duration // a file every FileInterval, of Rate × FileInterval events
	BadLines     float64       // fraction of the generated lines replaced by bad ones
	World        eventgen.World
	Seed         uint64
	Shards       int

	Shared      spool.Dir // the stack's shared folder
	PipelineURL string    // the pipeline API's base, …/api/v1/pipeline
	BalanceURL  string    // balance's base URL, http://host:port
	CacheURL    string
	Producers   []string // the cdc-producers' base URLs, for /metrics

	// DrainTimeout bounds the wait for the pipeline to finish the run's
	// files after the load.
	DrainTimeout time.Duration
	// Checks run after the drain: the audit and the reconciliations.
	Checks []Check

	// Progress receives a progress line every second (rewritten in place
	// when Terminal), or every 5 s otherwise.
	Progress io.Writer
	Terminal bool
}

// eventsPerFile is how many events each file holds.
func (c *Config) eventsPerFile() int {
	return max(2, int(math.Round(float64(c.Rate)*c.FileInterval.Seconds())))
}

// MaxEventsPerFile bounds Rate × FileInterval: order ids are the stem
// followed by 5 digits.
const MaxEventsPerFile = 99_000

// Result is what a run found.
type Result struct {
	Config    *Config
	Start     time.Time
	LoadEnd   time.Time
	DrainEnd  time.Time
	Drained   bool
	Unseen    int // probes still unseen at the end of the drain
	Series    []Second
	Latencies []*Latency // in report order

	Files, EventsPerFile   int
	FirstStem, LastStem    string
	Offered, Written       int // events
	BadLines               int
	WriteErrors            []string
	Reads, ReadsDropped    int
	ReadErrors             map[string]int
	ProbeErrors            map[string]int
	ScrapeFailures         map[string]int
	Checks                 []CheckResult
	ProbesSent, ProbesSeen int
	Probes                 []ProbeTiming
}

// ProbeTiming is one file's probes: when the file was meant to be written
// (seconds since the start) and how long after it was registered done its
// effects became visible (ms; NaN when never).
type ProbeTiming struct {
	T, Balance, Cache float64
}

// Failures are the checks that failed, one line each.
func (r *Result) Failures() []string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK() {
			out = append(out, c.Summary())
		}
	}
	return out
}

// OK reports whether every check passed.
func (r *Result) OK() bool { return len(r.Failures()) == 0 }

// ErrStackDown is returned by Run when the stack does not answer before
// the load starts.
var ErrStackDown = errors.New("the stack does not answer")

// Run drives the stack as cfg says and returns what it found; the error
// is for a run that could not start (ErrStackDown) or was interrupted.
func Run(ctx context.Context, cfg *Config) (*Result, error) {
	api := pipeline.NewClient(pipeline.ClientConfig{URL: cfg.PipelineURL, Timeout: 10 * time.Second})
	for deadline, first := time.Now().Add(preflightFor), true; ; first = false {
		err := preflight(ctx, cfg, api)
		if err == nil {
			break
		}
		if first {
			fmt.Fprintf(cfg.Progress, "load-test: waiting up to %s for the stack: %v\n", preflightFor, err)
		}
		if time.Now().After(deadline) || !sleepUntil(ctx, time.Now().Add(time.Second)) {
			return nil, fmt.Errorf("%w: %w", ErrStackDown, err)
		}
	}
	start := time.Now().Truncate(time.Second).Add(time.Second)
	rec := newRecorder(start)
	track := newTracker()
	rd := newReads(cfg, rec)
	sc := newScraper(cfg, rec, api)
	w := newWriter(cfg, api, rec, track)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	loadCtx, endLoad := context.WithDeadline(runCtx, start.Add(cfg.Duration))
	defer endLoad()
	var bg, load sync.WaitGroup
	bg.Go(func() { track.pollProbes(runCtx, cfg, rec) })
	bg.Go(func() { track.pollStages(runCtx, api, rec) })
	bg.Go(func() { sc.run(runCtx) })
	prog := &progress{cfg: cfg, rec: rec, track: track, reads: rd, scrape: sc}
	bg.Go(func() { prog.run(runCtx) })
	load.Go(func() { w.run(loadCtx) })
	load.Go(func() { rd.run(loadCtx) })
	load.Wait()
	res := &Result{Config: cfg, Start: start, LoadEnd: time.Now(), EventsPerFile: w.perFile}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}

	rec.setPhase(PhaseDrain)
	prog.setPhase("drain")
	res.Drained, res.Unseen = drain(ctx, cfg, track, sc)
	res.DrainEnd = time.Now()
	stop()
	bg.Wait()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	prog.clear()
	for _, c := range cfg.Checks {
		fmt.Fprintf(cfg.Progress, "load-test: %s…\n", c.Name)
		res.Checks = append(res.Checks, c.run(ctx))
	}

	res.Series = rec.series()
	track.mu.Lock()
	defer track.mu.Unlock()
	for _, name := range []string{LatBalance, LatBalanceSched, LatCache, LatCacheSched, LatWrite, LatSplit, LatWorked, LatSent} {
		res.Latencies = append(res.Latencies, track.lat[name])
	}
	res.Latencies = append(res.Latencies, rd.balance, rd.cache)
	res.Files, res.BadLines, res.WriteErrors = len(track.files), w.b.nBad, track.failed
	if n := len(track.files); n > 0 {
		res.FirstStem, res.LastStem = track.files[0].stem, track.files[n-1].stem
	}
	for _, f := range track.files {
		res.Written += f.events
		res.ProbesSent += 2
		pt := ProbeTiming{T: f.intended.Sub(start).Seconds(), Balance: math.NaN(), Cache: math.NaN()}
		if !f.seenBal.IsZero() {
			pt.Balance = float64(f.seenBal.Sub(f.done)) / float64(time.Millisecond)
		}
		if !f.seenCch.IsZero() {
			pt.Cache = float64(f.seenCch.Sub(f.done)) / float64(time.Millisecond)
		}
		res.Probes = append(res.Probes, pt)
		if !f.seenBal.IsZero() {
			res.ProbesSeen++
		}
		if !f.seenCch.IsZero() {
			res.ProbesSeen++
		}
	}
	for _, s := range res.Series {
		res.Offered += s.Offered
	}
	rd.mu.Lock()
	res.Reads, res.ReadsDropped, res.ReadErrors = rd.finished, rd.dropped, maps.Clone(rd.errors)
	rd.mu.Unlock()
	res.ProbeErrors = maps.Clone(track.probeError)
	sc.mu.Lock()
	res.ScrapeFailures = maps.Clone(sc.failures)
	sc.mu.Unlock()
	return res, nil
}

// preflightFor is how long Run waits for the stack to answer (one just
// started, say).
const preflightFor = 30 * time.Second

// preflight checks that the stack answers and the shared folder takes
// files, so that a wrong address fails before the load, not after it.
func preflight(ctx context.Context, cfg *Config, api *pipeline.Client) error {
	var errs []error
	if _, err := api.Summary(ctx); err != nil {
		errs = append(errs, fmt.Errorf("pipeline API at %s: %w", cfg.PipelineURL, err))
	}
	for _, u := range []string{cfg.BalanceURL, cfg.CacheURL} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"/health", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("HTTP %d", resp.StatusCode)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s/health: %w", u, err))
		}
	}
	if err := os.MkdirAll(cfg.Shared.EventsDir(), 0o755); err != nil {
		return errors.Join(append(errs, err)...)
	}
	f, err := os.CreateTemp(cfg.Shared.EventsDir(), ".load-test-*")
	if err != nil {
		errs = append(errs, fmt.Errorf("shared folder %s: %w", cfg.Shared, err))
	} else {
		f.Close()
		os.Remove(f.Name())
	}
	return errors.Join(errs...)
}

// drain waits until every file of the run is in the shards, every probe
// seen and the consumers have no lag, or DrainTimeout has passed; it
// returns whether it all drained and how many probes were still unseen.
func drain(ctx context.Context, cfg *Config, track *tracker, sc *scraper) (bool, int) {
	deadline := time.Now().Add(cfg.DrainTimeout)
	for {
		done, unseen := track.drained()
		g := sc.gauges()
		if done && nanTo(g.balanceLag, 0) == 0 && nanTo(g.cacheLag, 0) == 0 {
			return true, 0
		}
		if time.Now().After(deadline) || !sleepUntil(ctx, time.Now().Add(250*time.Millisecond)) {
			return false, unseen
		}
	}
}

// progress writes the live progress line.
type progress struct {
	cfg    *Config
	rec    *recorder
	track  *tracker
	reads  *reads
	scrape *scraper
	mu     sync.Mutex
	phase  string
	shown  bool
}

func (p *progress) setPhase(s string) {
	p.mu.Lock()
	p.phase = s
	p.mu.Unlock()
}

func (p *progress) run(ctx context.Context) {
	every := time.Second
	if !p.cfg.Terminal {
		every = 5 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			p.print()
		}
	}
}

func (p *progress) print() {
	p.mu.Lock()
	defer p.mu.Unlock()
	elapsed := time.Since(p.rec.start).Truncate(time.Second)
	p.track.mu.Lock()
	written, files := 0, len(p.track.files)
	for _, f := range p.track.files {
		written += f.events
	}
	bal := p.track.lat[LatBalance]
	e2e := "-"
	if bal.H.TotalCount() > 0 {
		e2e = fmt.Sprintf("%s (max %s)", bal.Quantile(50).Round(time.Millisecond), bal.Max().Round(time.Millisecond))
	}
	p.track.mu.Unlock()
	_, unseen := p.track.drained()
	p.reads.mu.Lock()
	reads, rerr := p.reads.finished, 0
	for _, n := range p.reads.errors {
		rerr += n
	}
	p.reads.mu.Unlock()
	g := p.scrape.gauges()
	phase := p.phase
	if phase == "" {
		phase = fmt.Sprintf("load %s/%s", elapsed, p.cfg.Duration)
	}
	line := fmt.Sprintf("load-test %s | %d events in %d files (%.0f/s) | e2e balance p50 %s, %d probes pending | %d reads, %d errors | cdc lag %s, lag balance %s cache %s",
		phase, written, files, float64(written)/max(elapsed.Seconds(), 1), e2e, unseen, reads, rerr,
		gauge(g.cdcLag, "s"), gauge(g.balanceLag, ""), gauge(g.cacheLag, ""))
	if p.cfg.Terminal {
		fmt.Fprintf(p.cfg.Progress, "\r\033[K%s", line)
		p.shown = true
	} else {
		fmt.Fprintln(p.cfg.Progress, line)
	}
}

// clear ends the progress line on a terminal.
func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprintln(p.cfg.Progress)
		p.shown = false
	}
}

func gauge(v float64, unit string) string {
	if math.IsNaN(v) {
		return "?"
	}
	return fmt.Sprintf("%.4g%s", v, unit)
}

// Keys returns m's keys, sorted, for reports.
func Keys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// oneLine is s's last non-empty line.
func oneLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
