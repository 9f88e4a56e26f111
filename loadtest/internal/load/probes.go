package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/shopledger/shopledger/internal/pipeline"
)

// tracker holds the run's files and follows each through the pipeline
// (stages, from the pipeline API) and to its probes' effects (balance and
// cache REST); safe for concurrent use.
type tracker struct {
	mu         sync.Mutex
	files      []*file // written, in order
	failed     []string
	probeError map[string]int // by what went wrong
	lat        map[string]*Latency
}

// The latencies the tracker measures, by name.
const (
	LatWrite        = "write"
	LatBalance      = "e2e_balance"
	LatBalanceSched = "e2e_balance_intended"
	LatCache        = "e2e_cache"
	LatCacheSched   = "e2e_cache_intended"
	LatSplit        = "stage_split"
	LatWorked       = "stage_worker"
	LatSent         = "stage_sender"
)

func newTracker() *tracker {
	t := &tracker{probeError: map[string]int{}, lat: map[string]*Latency{}}
	for _, l := range []*Latency{
		newLatency(LatBalance, "file registered done → its probe user visible in balance's REST answer"),
		newLatency(LatBalanceSched, "file's intended write time → its probe user visible in balance (coordinated omission corrected)"),
		newLatency(LatCache, "file registered done → its probe good visible in cache's REST answer"),
		newLatency(LatCacheSched, "file's intended write time → its probe good visible in cache (coordinated omission corrected)"),
		newLatency(LatWrite, "file's intended write time → registered done (write and API calls, plus lateness)"),
		newLatency(LatSplit, "file registered done → shard-splitter done on every shard (polled, ±0.5 s)"),
		newLatency(LatWorked, "file registered done → shard-worker done on every shard (polled, ±0.5 s)"),
		newLatency(LatSent, "file registered done → mysql-sender done on every shard: in the shards (polled, ±0.5 s)"),
	} {
		t.lat[l.Name] = l
	}
	return t
}

func (t *tracker) written(f *file) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.files = append(t.files, f)
	t.lat[LatWrite].record(f.done.Sub(f.intended))
}

func (t *tracker) writeFailed(what string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = append(t.failed, what)
}

// probe is one probe to look for.
type probe struct {
	f       *file
	balance bool // the balance probe, else the cache one
}

// unseen returns the probes not seen yet, and how many.
func (t *tracker) unseen() []probe {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []probe
	for _, f := range t.files {
		if f.seenBal.IsZero() {
			out = append(out, probe{f, true})
		}
		if f.seenCch.IsZero() {
			out = append(out, probe{f, false})
		}
	}
	return out
}

// seen records that p's effect was visible at at.
func (t *tracker) seen(p probe, at time.Time, rec *recorder) {
	t.mu.Lock()
	defer t.mu.Unlock()
	from, sched := t.lat[LatCache], t.lat[LatCacheSched]
	dst := &p.f.seenCch
	if p.balance {
		from, sched, dst = t.lat[LatBalance], t.lat[LatBalanceSched], &p.f.seenBal
	}
	if !dst.IsZero() {
		return
	}
	*dst = at
	from.record(at.Sub(p.f.done))
	sched.record(at.Sub(p.f.intended))
	ms := float64(at.Sub(p.f.done)) / float64(time.Millisecond)
	rec.update(at, func(s *Second) {
		if p.balance {
			maxInto(&s.BalanceE2EMax, ms)
		} else {
			maxInto(&s.CacheE2EMax, ms)
		}
	})
}

func (t *tracker) probeFailed(what string) {
	t.mu.Lock()
	t.probeError[what]++
	t.mu.Unlock()
}

// pollProbes looks for the unseen probes' effects until ctx ends: each
// probe every tenth of its age (at least every 2 s, at most every 25 ms),
// so the latency is known to 10% (or 25 ms) without flooding the REST APIs
// while the pipeline is behind. A probe is seen when the answer says 200; 404 means
// not yet.
func (t *tracker) pollProbes(ctx context.Context, cfg *Config, rec *recorder) {
	cl := &http.Client{Timeout: 10 * time.Second}
	next := map[probe]time.Time{}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		for _, p := range t.unseen() {
			if now.Before(next[p]) {
				continue
			}
			age := now.Sub(p.f.done)
			next[p] = now.Add(min(max(age/10, 25*time.Millisecond), 2*time.Second))
			select {
			case sem <- struct{}{}:
			default:
				continue // 16 in flight: next tick
			}
			wg.Go(func() {
				defer func() { <-sem }()
				t.look(ctx, cl, cfg, p, rec)
			})
		}
	}
}

func (t *tracker) look(ctx context.Context, cl *http.Client, cfg *Config, p probe, rec *recorder) {
	url := fmt.Sprintf("%s/api/v1/shops/%d/goods/%d", cfg.CacheURL, p.f.shop, p.f.probe)
	if p.balance {
		url = fmt.Sprintf("%s/api/v1/balances/%d", cfg.BalanceURL, p.f.probe)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := cl.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			t.probeFailed("probe read failed: " + shortErr(err))
		}
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		t.seen(p, time.Now(), rec)
	case http.StatusNotFound:
	default:
		t.probeFailed(fmt.Sprintf("probe read answered HTTP %d", resp.StatusCode))
	}
}

// pollStages follows the oldest files not yet in the shards through the
// pipeline API, every half second, at most 20 files each time.
func (t *tracker) pollStages(ctx context.Context, api *pipeline.Client, rec *recorder) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	stages := []pipeline.Stage{pipeline.StageShardSplitter, pipeline.StageShardWorker, pipeline.StageMySQLSender}
	names := []string{LatSplit, LatWorked, LatSent}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, f := range t.inPipeline(20) {
			resp, err := api.File(ctx, f.stem)
			if err != nil {
				if ctx.Err() == nil {
					t.probeFailed("pipeline API read failed: " + shortErr(err))
				}
				continue
			}
			now := time.Now()
			for i, st := range stages {
				all := len(resp.Shards) > 0
				for _, s := range resp.Shards {
					all = all && s.Status(st) == pipeline.StatusDone
				}
				if !all {
					continue
				}
				t.mu.Lock()
				first := f.stage[i].IsZero()
				if first {
					f.stage[i] = now
					t.lat[names[i]].record(now.Sub(f.done))
				}
				t.mu.Unlock()
				if first {
					rec.update(now, func(s *Second) {
						switch i {
						case 0:
							s.Split += f.events
						case 1:
							s.Worked += f.events
						default:
							s.Sent += f.events
						}
					})
				}
			}
		}
	}
}

// inPipeline returns up to n of the oldest files not yet in the shards.
func (t *tracker) inPipeline(n int) []*file {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*file
	for _, f := range t.files {
		if f.stage[2].IsZero() {
			out = append(out, f)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

// drained reports whether every file is in the shards and every probe
// seen, and how many probes are still unseen.
func (t *tracker) drained() (bool, int) {
	n := len(t.unseen())
	return n == 0 && len(t.inPipeline(1)) == 0, n
}

// shortErr keeps the kind of an error, not its addresses, for counting.
func shortErr(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}
