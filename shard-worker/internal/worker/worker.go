// Package worker runs one shard's two pipeline stages: shard-worker (read the
// splitter's file for this shard, validate every line, write the prepared
// file) and mysql-sender (apply the prepared file to the shard through the
// ledger). It claims each task with the pipeline API's start, journals the
// claim in the shard database first, and on restart resumes every task it had
// started, so a kill -9 at any instant leaves nothing stuck or lost.
package worker

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/spool"
	"github.com/shopledger/shopledger/internal/stage"
	"github.com/shopledger/shopledger/shard-worker/internal/ledger"
)

// Config is what a worker needs besides its connections.
type Config struct {
	Shard        int
	Spool        spool.Dir
	BatchSize    int           // events per ledger transaction
	PollInterval time.Duration // wait between empty polls of the queues
}

// Worker is one shard's worker.
type Worker struct {
	cfg     Config
	db      *sql.DB
	api     *pipeline.Client
	ledger  *ledger.Ledger
	log     *slog.Logger
	metrics *metrics
}

// New builds a worker.
func New(cfg Config, db *sql.DB, api *pipeline.Client, l *ledger.Ledger, log *slog.Logger, reg prometheus.Registerer) *Worker {
	return &Worker{cfg: cfg, db: db, api: api, ledger: l, log: log, metrics: newMetrics(reg, cfg.Shard)}
}

// errPermanent marks failures that retrying cannot mend (a missing or
// unreadable input file): the task is marked failed with the reason.
var errPermanent = errors.New("permanent")

// Run works until ctx ends. Transient errors (database or API unreachable)
// are logged and retried after the poll interval.
func (w *Worker) Run(ctx context.Context) error {
	return stage.Run(ctx, w.cfg.PollInterval, w.log, w.Step)
}

// Step does one unit of work: expire pending returns, resume a claimed task,
// or take the oldest ready task. It reports whether it did a task.
func (w *Worker) Step(ctx context.Context) (bool, error) {
	if n, err := w.ledger.ExpirePending(ctx); err != nil {
		return false, err
	} else if n > 0 {
		w.log.Info("pending returns expired as orphaned", "count", n)
		w.metrics.events.WithLabelValues(string(ledger.StatusRejected)).Add(float64(n))
	}
	if did, err := w.resume(ctx); did || err != nil {
		return did, err
	}
	for _, stage := range []string{pipeline.StageMySQLSender, pipeline.StageShardWorker} {
		items, err := w.api.Queue(ctx, stage, w.cfg.Shard, 1)
		if err != nil {
			return false, err
		}
		if len(items) == 0 {
			continue
		}
		file := items[0].Filename
		ok, err := w.claim(ctx, stage, file)
		if err != nil || !ok {
			return ok, err
		}
		return true, w.run(ctx, stage, file)
	}
	return false, nil
}

// resume finishes the tasks this shard's worker had started.
func (w *Worker) resume(ctx context.Context) (bool, error) {
	rows, err := w.db.QueryContext(ctx, "SELECT stage, filename FROM stage_claim ORDER BY created_at, filename")
	if err != nil {
		return false, fmt.Errorf("read claims: %w", err)
	}
	type claim struct{ stage, file string }
	var claims []claim
	for rows.Next() {
		var c claim
		if err := rows.Scan(&c.stage, &c.file); err != nil {
			rows.Close()
			return false, err
		}
		claims = append(claims, c)
	}
	rows.Close()
	for _, c := range claims {
		st, err := w.status(ctx, c.stage, c.file)
		if err != nil {
			return false, err
		}
		if st != pipeline.StatusStarted {
			// Done, failed, never started, or unknown: nothing of ours runs.
			if err := w.unclaim(ctx, c.stage, c.file); err != nil {
				return false, err
			}
			continue
		}
		w.log.Info("resuming task", "stage", c.stage, "file", c.file)
		return true, w.run(ctx, c.stage, c.file)
	}
	return false, nil
}

func (w *Worker) status(ctx context.Context, stage, file string) (string, error) {
	f, err := w.api.File(ctx, file)
	if errors.Is(err, pipeline.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	for _, s := range f.Shards {
		if s.Shard == w.cfg.Shard {
			return s.Status(stage), nil
		}
	}
	return "", nil
}

// claim journals the claim, then starts the task. A refused start (another
// worker has it, or it moved on) is not an error.
func (w *Worker) claim(ctx context.Context, stage, file string) (bool, error) {
	if _, err := w.db.ExecContext(ctx, "INSERT IGNORE INTO stage_claim (stage, filename) VALUES (?, ?)", stage, file); err != nil {
		return false, fmt.Errorf("journal claim: %w", err)
	}
	_, err := w.api.Transition(ctx, stage, pipeline.TransitionStart, file, w.cfg.Shard)
	if errors.Is(err, pipeline.ErrConflict) {
		w.log.Warn("task taken by someone else", "stage", stage, "file", file, "err", err)
		return false, w.unclaim(ctx, stage, file)
	}
	return err == nil, err
}

func (w *Worker) unclaim(ctx context.Context, stage, file string) error {
	_, err := w.db.ExecContext(ctx, "DELETE FROM stage_claim WHERE stage = ? AND filename = ?", stage, file)
	return err
}

// run performs a claimed task and reports its end to the API.
func (w *Worker) run(ctx context.Context, stage, file string) error {
	start := time.Now()
	var err error
	switch stage {
	case pipeline.StageShardWorker:
		err = w.prepare(file)
	case pipeline.StageMySQLSender:
		err = w.send(ctx, file)
	}
	transition := pipeline.TransitionDone
	if err != nil {
		if !errors.Is(err, errPermanent) {
			return fmt.Errorf("%s %s: %w", stage, file, err)
		}
		w.log.Error("task failed", "stage", stage, "file", file, "shard", w.cfg.Shard, "reason", err)
		transition = pipeline.TransitionFail
	}
	if _, err := w.api.Transition(ctx, stage, transition, file, w.cfg.Shard); err != nil {
		return fmt.Errorf("%s %s: mark %s: %w", stage, file, transition, err)
	}
	w.metrics.tasks.WithLabelValues(stage, transition).Inc()
	w.log.Info("task finished", "stage", stage, "file", file, "result", transition, "took", time.Since(start).Round(time.Millisecond))
	return w.unclaim(ctx, stage, file)
}

// prepare turns the splitter's file for this shard into the prepared file.
func (w *Worker) prepare(file string) error {
	in := w.cfg.Spool.SplitFile(file, w.cfg.Shard)
	out, err := spool.Create(w.cfg.Spool.PreparedFile(file, w.cfg.Shard))
	if err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	enc := json.NewEncoder(out)
	err = spool.ReadLines(in, func(n int, line []byte) error {
		var r event.Routed
		if err := json.Unmarshal(line, &r); err != nil {
			return fmt.Errorf("%s line %d: not a splitter line: %v", in, n, err)
		}
		return enc.Encode(event.Prepare(r))
	})
	if err != nil {
		out.Abort()
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	if err := out.Commit(); err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	return nil
}

// send applies the prepared file in batches. Each batch commits the number
// of lines applied so far with its rows, so a crash mid-file or a retry of
// the whole file resumes after the last committed batch and applies each
// line once.
func (w *Worker) send(ctx context.Context, file string) error {
	path := w.cfg.Spool.PreparedFile(file, w.cfg.Shard)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	defer f.Close()
	done, err := w.ledger.Applied(ctx, file)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	batch := make([]event.Prepared, 0, w.cfg.BatchSize)
	var total ledger.Stats
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		t := time.Now()
		st, err := w.ledger.Apply(ctx, batch, ledger.Progress{File: file, Lines: n})
		if err != nil {
			return err
		}
		w.metrics.observe(st, time.Since(t))
		total.Add(st)
		batch = batch[:0]
		return nil
	}
	for sc.Scan() {
		n++
		if n <= done {
			continue
		}
		var p event.Prepared
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			return fmt.Errorf("%w: %s line %d: %v", errPermanent, path, n, err)
		}
		batch = append(batch, p)
		if len(batch) == w.cfg.BatchSize {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %s: %v", errPermanent, path, err)
	}
	if err := flush(); err != nil {
		return err
	}
	if done > n {
		return fmt.Errorf("%w: %s has %d lines but %d were applied before: the prepared file changed", errPermanent, path, n, done)
	}
	w.log.Info("file applied", "file", file, "lines", n, "resumed_after", done, "applied", total.Applied, "rejected", total.Rejected,
		"duplicate", total.Duplicate, "pending", total.Pending, "settled_pending", total.Resolved)
	return nil
}

type metrics struct {
	events *prometheus.CounterVec
	tasks  *prometheus.CounterVec
	batch  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, shard int) *metrics {
	labels := prometheus.Labels{"shard": fmt.Sprint(shard)}
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shard_worker_events_total",
			Help: "Event lines recorded, by outcome (applied, rejected, duplicate, pending, settled).", ConstLabels: labels}, []string{"status"}),
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shard_worker_tasks_total",
			Help: "Pipeline tasks finished, by stage and result.", ConstLabels: labels}, []string{"stage", "result"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shard_worker_batch_seconds",
			Help: "Time to apply one batch in one transaction.", ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
	}
	reg.MustRegister(m.events, m.tasks, m.batch)
	return m
}

func (m *metrics) observe(st ledger.Stats, d time.Duration) {
	m.events.WithLabelValues(string(ledger.StatusApplied)).Add(float64(st.Applied))
	m.events.WithLabelValues(string(ledger.StatusRejected)).Add(float64(st.Rejected))
	m.events.WithLabelValues(string(ledger.StatusDuplicate)).Add(float64(st.Duplicate))
	m.events.WithLabelValues(string(ledger.StatusPending)).Add(float64(st.Pending))
	m.events.WithLabelValues("settled").Add(float64(st.Resolved))
	m.batch.Observe(d.Seconds())
}
