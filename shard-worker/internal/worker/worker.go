// Package worker runs one shard's two pipeline stages: shard-worker (read the
// splitter's file for this shard, validate every line, write the prepared
// file) and mysql-sender (apply the prepared file to the shard through the
// ledger). It claims each task with the pipeline API's start as owner
// shard-worker-<shard> (unique: the shard's writer lock), and on restart
// resumes every task it had started, so a kill -9 at any instant leaves
// nothing stuck or lost.
package worker

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/spool"
	"github.com/shopledger/shopledger/internal/stage"
	"github.com/shopledger/shopledger/internal/tracing"
	"github.com/shopledger/shopledger/shard-worker/internal/ledger"
)

// Config is what a worker needs besides its connections.
type Config struct {
	Shard        int
	Spool        spool.Dir
	BatchSize    int           // events per ledger transaction
	PollInterval time.Duration // wait between empty polls of the queues
}

// LockName is the MySQL named lock a shard's worker holds while it runs:
// the ledger assumes it is the shard's only writer.
const LockName = "shopledger.shard-worker"

// Worker is one shard's worker.
type Worker struct {
	cfg     Config
	db      *sql.DB
	claims  stage.Claims
	ledger  *ledger.Ledger
	log     *slog.Logger
	metrics *metrics
	// handoff is the file the shard-worker stage just prepared, as the
	// mysql-sender stage would read it back: the next stage of that file
	// takes it from memory instead of decoding the file again.
	handoff struct {
		file string
		evs  []event.Prepared
	}
}

// maxHandoff is the most prepared lines kept in memory for the
// mysql-sender stage (about 300 bytes each); a larger file is read back.
const maxHandoff = 200_000

// New builds a worker.
func New(cfg Config, db *sql.DB, api *pipeline.Client, l *ledger.Ledger, log *slog.Logger, reg prometheus.Registerer) *Worker {
	return &Worker{cfg: cfg, db: db, ledger: l, log: log, metrics: newMetrics(reg),
		claims: stage.Claims{API: api, Owner: fmt.Sprintf("shard-worker-%d", cfg.Shard), Log: log}}
}

// errPermanent marks failures that retrying cannot mend (a missing or
// unreadable input file): the task is marked failed with the reason.
var errPermanent = errors.New("permanent")

// Run works until ctx ends. Transient errors (database or API unreachable)
// are logged and retried after the poll interval.
func (w *Worker) Run(ctx context.Context) error {
	return stage.Run(ctx, w.cfg.PollInterval, w.log, w.Step)
}

// stages are the worker's stages, the later one first: a file on its way
// to the shard goes before new files.
var stages = []pipeline.Stage{pipeline.StageMySQLSender, pipeline.StageShardWorker}

// Step does one unit of work: resume a task this worker had started, or
// take the oldest ready task; with nothing to do, expire pending returns
// (only then: a return's purchase may still be in the backlog). It reports
// whether it did something.
func (w *Worker) Step(ctx context.Context) (bool, error) {
	for _, st := range stages {
		items, err := w.claims.Started(ctx, st, w.cfg.Shard, 1)
		if err != nil {
			return false, err
		}
		if len(items) > 0 {
			w.log.Info("resuming task", "stage", st, "file", items[0].Filename)
			return true, w.run(ctx, st, items[0])
		}
	}
	for _, st := range stages {
		items, err := w.claims.API.Queue(ctx, st, w.cfg.Shard, 1)
		if err != nil {
			return false, err
		}
		if len(items) == 0 {
			continue
		}
		ok, err := w.claims.Claim(ctx, st, items[0].Filename, w.cfg.Shard)
		if err != nil || !ok {
			return ok, err
		}
		return true, w.run(ctx, st, items[0])
	}
	n, err := w.ledger.ExpirePending(ctx)
	if err != nil {
		return false, err
	}
	if n > 0 {
		w.log.Info("pending returns expired as orphaned", "count", n)
		w.metrics.events.WithLabelValues(string(ledger.StatusRejected)).Add(float64(n))
	}
	return n > 0, nil
}

// run performs a claimed task and reports its end to the API, under a
// span continuing the file's trace (the API hands the next stage this
// span's context with the done).
func (w *Worker) run(ctx context.Context, st pipeline.Stage, item pipeline.QueueItem) (err error) {
	start := time.Now()
	file := item.Filename
	ctx, span := tracing.Start(ctx, string(st), item.TraceParent, trace.WithAttributes(tracing.File(file), tracing.Shard(w.cfg.Shard)))
	defer func() { tracing.End(span, err) }()
	switch st {
	case pipeline.StageShardWorker:
		err = w.prepare(file)
	case pipeline.StageMySQLSender:
		err = w.send(ctx, file)
	}
	failed := err != nil
	if failed {
		if !errors.Is(err, errPermanent) {
			return fmt.Errorf("%s %s: %w", st, file, err)
		}
		w.log.Error("task failed", "stage", st, "file", file, "shard", w.cfg.Shard, "reason", err)
	}
	if err := w.claims.Finish(ctx, st, file, w.cfg.Shard, failed); err != nil {
		return err
	}
	result := pipeline.TransitionDone
	if failed {
		result = pipeline.TransitionFail
	}
	w.metrics.stage.File(st, failed, time.Since(start))
	w.log.Info("task finished", "stage", st, "file", file, "result", result, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// inputError classifies an error reading a task's input: a missing file
// or a damaged line cannot be mended by retrying (errPermanent); any other
// error (a disk error, too many open files) is retried.
func inputError(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	return err
}

// prepare turns the splitter's file for this shard into the prepared file.
// Errors writing it (a full disk, say) are retried.
func (w *Worker) prepare(file string) error {
	w.handoff.file, w.handoff.evs = "", nil
	in := w.cfg.Spool.SplitFile(file, w.cfg.Shard)
	out, err := spool.Create(w.cfg.Spool.PreparedFile(file, w.cfg.Shard))
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	lines := 0
	var evs []event.Prepared
	keep := true // the lines fit the handoff
	err = spool.ReadLines(in, spool.MaxLine, func(l spool.Line) error {
		if l.TooLong() {
			return fmt.Errorf("%w: %s line %d: %d bytes, longer than any splitter line", errPermanent, in, l.N, l.Len)
		}
		r, err := event.ParseRouted(l.Bytes)
		if err != nil {
			return fmt.Errorf("%w: %s line %d: not a splitter line: %v", errPermanent, in, l.N, err)
		}
		lines++
		p := event.Prepare(r)
		if keep = keep && len(evs) < maxHandoff; keep {
			evs = append(evs, p)
		} else {
			evs = nil
		}
		return enc.Encode(p)
	})
	if err != nil {
		out.Abort()
		return inputError(err)
	}
	if err := out.Commit(); err != nil {
		return err
	}
	w.metrics.stage.Lines(pipeline.StageShardWorker, lines)
	if keep {
		w.handoff.file, w.handoff.evs = file, evs
	}
	return nil
}

// send applies the prepared file in batches. Each batch commits the number
// of lines applied so far with its rows, so a crash mid-file or a retry of
// the whole file resumes after the last committed batch and applies each
// line once. The next batch is read and decoded while one is applied.
func (w *Worker) send(ctx context.Context, file string) error {
	done, err := w.ledger.Applied(ctx, file)
	if err != nil {
		return err
	}
	batches := make(chan batch, 1)
	g, gctx := errgroup.WithContext(ctx)
	lines := 0
	g.Go(func() error {
		defer close(batches)
		var err error
		lines, err = w.batches(gctx, file, done, batches)
		return err
	})
	var total ledger.Stats
	g.Go(func() error {
		for b := range batches {
			t := time.Now()
			bctx, span := tracing.Start(gctx, "mysql-sender batch", "", trace.WithAttributes(attribute.Int("shopledger.lines", len(b.evs))))
			st, err := w.ledger.Apply(bctx, b.evs, ledger.Progress{File: file, Lines: b.end})
			tracing.End(span, err)
			if err != nil {
				return err
			}
			w.metrics.observe(st, len(b.evs), time.Since(t))
			total.Add(st)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	path := w.cfg.Spool.PreparedFile(file, w.cfg.Shard)
	if done > lines {
		return fmt.Errorf("%w: %s has %d lines but %d were applied before: the prepared file changed", errPermanent, path, lines, done)
	}
	w.log.Info("file applied", "file", file, "lines", lines, "resumed_after", done, "applied", total.Applied, "rejected", total.Rejected,
		"duplicate", total.Duplicate, "pending", total.Pending, "settled_pending", total.Resolved)
	return nil
}

// batch is up to BatchSize prepared lines ending with line end.
type batch struct {
	evs []event.Prepared
	end int
}

// batches sends the lines of file's prepared file after line done to out,
// in batches, and returns how many lines the file has. The lines come from
// the handoff of the shard-worker stage when it prepared this file, else
// from the file.
func (w *Worker) batches(ctx context.Context, file string, done int, out chan<- batch) (int, error) {
	send := func(b batch) error {
		select {
		case out <- b:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if w.handoff.file == file {
		evs := w.handoff.evs
		w.handoff.file, w.handoff.evs = "", nil
		for start := done; start < len(evs); start += w.cfg.BatchSize {
			end := min(start+w.cfg.BatchSize, len(evs))
			if err := send(batch{evs: evs[start:end], end: end}); err != nil {
				return 0, err
			}
		}
		return len(evs), nil
	}
	path := w.cfg.Spool.PreparedFile(file, w.cfg.Shard)
	b := batch{evs: make([]event.Prepared, 0, w.cfg.BatchSize)}
	n := 0
	err := spool.ReadLines(path, spool.MaxLine, func(l spool.Line) error {
		n = l.N
		if n <= done {
			return nil
		}
		var p event.Prepared
		if l.TooLong() {
			return fmt.Errorf("%w: %s line %d: %d bytes, longer than any prepared line", errPermanent, path, n, l.Len)
		}
		if err := json.Unmarshal(l.Bytes, &p); err != nil {
			return fmt.Errorf("%w: %s line %d: %v", errPermanent, path, n, err)
		}
		b.evs, b.end = append(b.evs, p), n
		if len(b.evs) < w.cfg.BatchSize {
			return nil
		}
		err := send(b)
		b = batch{evs: make([]event.Prepared, 0, w.cfg.BatchSize)}
		return err
	})
	if err != nil {
		return 0, inputError(err)
	}
	if len(b.evs) > 0 {
		if err := send(b); err != nil {
			return 0, err
		}
	}
	return n, nil
}

type metrics struct {
	stage  *stage.Metrics
	events *prometheus.CounterVec
	batch  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		stage: stage.NewMetrics(reg),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shopledger", Subsystem: "shard_worker", Name: "events_total",
			Help: "Event lines recorded in the shard, by outcome (applied, rejected, duplicate, pending, settled)."}, []string{"status"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "shopledger", Subsystem: "shard_worker", Name: "batch_duration_seconds",
			Help: "Time to apply one batch of a prepared file in one transaction.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
	}
	reg.MustRegister(m.events, m.batch)
	return m
}

func (m *metrics) observe(st ledger.Stats, lines int, d time.Duration) {
	m.events.WithLabelValues(string(ledger.StatusApplied)).Add(float64(st.Applied))
	m.events.WithLabelValues(string(ledger.StatusRejected)).Add(float64(st.Rejected))
	m.events.WithLabelValues(string(ledger.StatusDuplicate)).Add(float64(st.Duplicate))
	m.events.WithLabelValues(string(ledger.StatusPending)).Add(float64(st.Pending))
	m.events.WithLabelValues("settled").Add(float64(st.Resolved))
	m.stage.Lines(pipeline.StageMySQLSender, lines)
	m.batch.Observe(d.Seconds())
}
