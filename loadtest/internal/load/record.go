package load

import (
	"math"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// What a run measures: latencies in HdrHistograms (microseconds, 3
// significant digits, up to an hour), and a row of counts and gauges per
// second of the run, load and drain alike.

// maxLatency is the largest latency a histogram records; longer ones are
// recorded as this.
const maxLatency = time.Hour

// Latency is one latency distribution of the run.
type Latency struct {
	Name string // short, for the CSV and plots
	What string // what is measured, from when to when
	H    *hdrhistogram.Histogram
}

func newLatency(name, what string) *Latency {
	return &Latency{Name: name, What: what, H: hdrhistogram.New(1, int64(maxLatency/time.Microsecond), 3)}
}

func (l *Latency) record(d time.Duration) {
	_ = l.H.RecordValue(min(max(int64(d/time.Microsecond), 1), int64(maxLatency/time.Microsecond)))
}

// Quantile returns the latency at quantile q (0..100), as a duration.
func (l *Latency) Quantile(q float64) time.Duration {
	return time.Duration(l.H.ValueAtQuantile(q)) * time.Microsecond
}

// Max is the largest latency recorded.
func (l *Latency) Max() time.Duration { return time.Duration(l.H.Max()) * time.Microsecond }

// Phase is the part of the run a second belongs to.
type Phase string

// The phases of a run.
const (
	PhaseLoad  Phase = "load"  // events and reads are sent
	PhaseDrain Phase = "drain" // waiting for the pipeline to finish them
)

// Second is one row of the series: what happened in one second of the run.
// Gauges that could not be read are NaN.
type Second struct {
	T     int // seconds since the start
	Phase Phase

	Offered     int // events whose intended send time fell in this second
	Written     int // events of files registered done in this second
	WriteErrors int

	// Events of the run's files whose stage finished (on every shard) in
	// this second, as seen through the pipeline API.
	Split, Worked, Sent int
	// Rows (file × shard) of every producer whose stage finished, from
	// the pipeline API's summary.
	RowsSplit, RowsWorked, RowsSent float64

	CDCRows        float64 // rows the cdc-producers published
	CDCLag         float64 // the largest cdc_lag_seconds
	BalanceApplied float64 // changes applied by balance
	CacheApplied   float64
	BalanceLag     float64 // messages behind, summed over partitions
	CacheLag       float64

	Reads, ReadErrors int
	ReadP50, ReadP99  float64 // milliseconds, of the reads answered in this second

	// End-to-end latencies (ms) of the probes that became visible in this
	// second, from their file being registered done.
	BalanceE2EMax, CacheE2EMax float64
	ProbesPending              int // at the end of the second
}

// recorder gathers the run's measurements; safe for concurrent use.
type recorder struct {
	start time.Time
	mu    sync.Mutex
	rows  []Second
	reads []*hdrhistogram.Histogram // per second, for the per-second quantiles
	phase Phase
}

func newRecorder(start time.Time) *recorder {
	return &recorder{start: start, phase: PhaseLoad}
}

// at returns the row of the second t falls in, growing the series; the
// caller holds mu.
func (r *recorder) at(t time.Time) *Second {
	i := max(0, int(t.Sub(r.start)/time.Second))
	for len(r.rows) <= i {
		n := len(r.rows)
		r.rows = append(r.rows, Second{T: n, Phase: r.phase, CDCLag: math.NaN(), BalanceLag: math.NaN(), CacheLag: math.NaN(),
			CDCRows: math.NaN(), BalanceApplied: math.NaN(), CacheApplied: math.NaN(),
			RowsSplit: math.NaN(), RowsWorked: math.NaN(), RowsSent: math.NaN(),
			ReadP50: math.NaN(), ReadP99: math.NaN(), BalanceE2EMax: math.NaN(), CacheE2EMax: math.NaN()})
		r.reads = append(r.reads, nil)
	}
	return &r.rows[i]
}

// update changes the row of the second t falls in.
func (r *recorder) update(t time.Time, f func(*Second)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r.at(t))
}

// setPhase makes the rows from now on belong to p.
func (r *recorder) setPhase(p Phase) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.phase = p
}

// read records a REST read answered at t after d.
func (r *recorder) read(t time.Time, d time.Duration, failed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	row := r.at(t)
	row.Reads++
	if failed {
		row.ReadErrors++
	}
	i := row.T
	if r.reads[i] == nil {
		r.reads[i] = hdrhistogram.New(1, int64(maxLatency/time.Microsecond), 2)
	}
	_ = r.reads[i].RecordValue(min(max(int64(d/time.Microsecond), 1), int64(maxLatency/time.Microsecond)))
}

// maxInto keeps the largest of *dst and v (NaN is nothing yet).
func maxInto(dst *float64, v float64) {
	if math.IsNaN(*dst) || v > *dst {
		*dst = v
	}
}

// series returns the rows, with the per-second read quantiles filled in.
func (r *recorder) series() []Second {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]Second(nil), r.rows...)
	for i, h := range r.reads {
		if h != nil && h.TotalCount() > 0 {
			out[i].ReadP50 = float64(h.ValueAtQuantile(50)) / 1000
			out[i].ReadP99 = float64(h.ValueAtQuantile(99)) / 1000
		}
	}
	return out
}
