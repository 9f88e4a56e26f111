package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// reads sends ReadRPS REST reads a second to balance and cache, open loop:
// read i is due at start + i/ReadRPS whatever the answers before it did,
// and its latency runs from that time, so a stack that answers slowly
// shows in the latency (queueing in this client included) instead of
// lowering the rate (coordinated omission). The reads: a user's balance
// (45%), the top balances (5%), a shop (45%), a good of a shop (5%), of the
// generated world; 404 (a user or shop not seen yet) is an answer, not an
// error.
type reads struct {
	cfg      *Config
	rec      *recorder
	balance  *Latency
	cache    *Latency
	mu       sync.Mutex
	errors   map[string]int
	sent     int
	dropped  int
	finished int
}

// readWorkers bounds the reads in flight; reads due while all are busy
// wait in a queue, their latency growing.
const readWorkers = 64

func newReads(cfg *Config, rec *recorder) *reads {
	return &reads{cfg: cfg, rec: rec, errors: map[string]int{},
		balance: newLatency("rest_balance", "REST read of balance, from its intended send time to the answer (coordinated omission corrected)"),
		cache:   newLatency("rest_cache", "REST read of cache, from its intended send time to the answer (coordinated omission corrected)")}
}

type readJob struct {
	due time.Time
	i   int
}

// run sends reads until ctx ends, then waits for those in flight.
func (r *reads) run(ctx context.Context) {
	if r.cfg.ReadRPS <= 0 {
		return
	}
	jobs := make(chan readJob, 100_000)
	cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: readWorkers, MaxConnsPerHost: readWorkers,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}
	var wg sync.WaitGroup
	for w := range readWorkers {
		rng := rand.New(rand.NewPCG(r.cfg.Seed, uint64(w)))
		wg.Go(func() {
			for j := range jobs {
				r.one(ctx, cl, rng, j)
			}
		})
	}
	every := time.Second / time.Duration(r.cfg.ReadRPS)
	for i := 0; ; i++ {
		due := r.rec.start.Add(time.Duration(i) * every)
		if ctx.Err() != nil || !sleepUntil(ctx, due) {
			break
		}
		select {
		case jobs <- readJob{due: due, i: i}:
			r.mu.Lock()
			r.sent++
			r.mu.Unlock()
		default: // 100,000 reads behind: counted, not sent
			r.mu.Lock()
			r.dropped++
			r.mu.Unlock()
		}
	}
	close(jobs)
	wg.Wait()
}

func (r *reads) one(ctx context.Context, cl *http.Client, rng *rand.Rand, j readJob) {
	w := r.cfg.World
	var url string
	lat := r.cache
	switch p := rng.IntN(100); {
	case p < 45:
		url, lat = fmt.Sprintf("%s/api/v1/balances/%d", r.cfg.BalanceURL, 1+rng.IntN(w.Users)), r.balance
	case p < 50:
		url, lat = r.cfg.BalanceURL+"/api/v1/balances?sort=-balance&limit=10", r.balance
	case p < 95:
		url = fmt.Sprintf("%s/api/v1/shops/%d", r.cfg.CacheURL, 1+rng.IntN(w.Shops))
	default:
		url = fmt.Sprintf("%s/api/v1/shops/%d/goods/%d", r.cfg.CacheURL, 1+rng.IntN(w.Shops), 1+rng.IntN(w.Goods))
	}
	// A read due while the load was on is made even if the load ended
	// since: its latency is part of the load.
	req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, url, nil)
	resp, err := cl.Do(req)
	now := time.Now()
	failed := ""
	if err != nil {
		failed = errKind(err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
			failed = fmt.Sprintf("HTTP %d", resp.StatusCode)
		}
	}
	r.mu.Lock()
	lat.record(now.Sub(j.due))
	r.finished++
	if failed != "" {
		r.errors[strings.SplitN(url, "/api/", 2)[0]+" "+failed]++
	}
	r.mu.Unlock()
	r.rec.read(now, now.Sub(j.due), failed != "")
}

// errKind names an error's kind for counting: a timeout, a refused
// connection, else its text.
func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case strings.Contains(err.Error(), "connection refused"):
		return "connection refused"
	case strings.Contains(err.Error(), "connection reset"):
		return "connection reset"
	}
	return shortErr(err)
}

// sleepUntil waits until t or ctx's end, and reports whether ctx is alive.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
