// Package splitter is the shard-splitter stage: it reads each events file
// once and writes one file per shard, routing by shop_id % N. Returns that
// carry no shop_id go to the shard of their purchase, found in the same file
// or in the order index kept in splitter_db (so also for purchases from
// earlier files or before a restart). A return whose purchase is not known
// yet is held and released into a later file's output once its purchase is
// split, or as an orphan after the hold; when no file comes, the splitter
// makes a release file of its own for them. Lines that cannot be routed are
// set aside in the malformed file with their line number and reason.
//
// splitter.go claims work, split.go splits one file, route.go decides where
// each line goes, held.go keeps the order index and held returns.
package splitter

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/spool"
	"github.com/shopledger/shopledger/internal/stage"
	"github.com/shopledger/shopledger/internal/tracing"
)

// Config is what the splitter needs besides its connections.
type Config struct {
	Spool        spool.Dir
	Shards       int           // N
	PollInterval time.Duration // wait between empty polls
	// ReturnHold is how long a return without shop_id waits for its
	// purchase before it is sent, as an orphan, to shard order_id % N.
	ReturnHold time.Duration
}

// LockName is the MySQL named lock the splitter holds while it runs: its
// order index and held returns assume a single splitter.
const LockName = "shopledger.shard-splitter"

// Owner is the splitter's name in its claims and the producer of its
// release files (pipeline.ReleaseProducer).
const Owner = pipeline.ReleaseProducer

// Splitter runs the stage.
type Splitter struct {
	cfg     Config
	db      *sql.DB
	claims  stage.Claims
	log     *slog.Logger
	now     func() time.Time
	stage   *stage.Metrics
	lines   *prometheus.CounterVec
	pending prometheus.Gauge
}

// New builds a splitter on splitter_db.
func New(cfg Config, db *sql.DB, api *pipeline.Client, log *slog.Logger, reg prometheus.Registerer) *Splitter {
	s := &Splitter{cfg: cfg, db: db, claims: stage.Claims{API: api, Owner: Owner, Log: log}, log: log, now: time.Now,
		stage: stage.NewMetrics(reg),
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shopledger", Subsystem: "splitter", Name: "lines_total",
			Help: "Lines split, by outcome (routed, held, released, orphaned, malformed)."}, []string{"outcome"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "shopledger", Subsystem: "splitter", Name: "held_returns",
			Help: "Returns held for their purchase (splitter_db.held_return)."}),
	}
	reg.MustRegister(s.lines, s.pending)
	return s
}

// errPermanent marks failures that retrying cannot mend (the events file is
// missing): the file's tasks are marked failed with the reason.
var errPermanent = errors.New("permanent")

// Run splits files until ctx ends. Transient errors (database or API
// unreachable, a full disk) are logged and retried.
func (s *Splitter) Run(ctx context.Context) error {
	return stage.Run(ctx, s.cfg.PollInterval, s.log, s.Step)
}

// Step resumes what this splitter had started, or splits the oldest ready
// file, or, with nothing to split, makes a release file for held returns
// that are due. It reports whether it did something.
func (s *Splitter) Step(ctx context.Context) (bool, error) {
	items, err := s.claims.Started(ctx, pipeline.StageShardSplitter, -1, 100)
	if err != nil {
		return false, err
	}
	if file, shards := oldest(items); file != "" {
		s.log.Info("resuming split", "file", file, "shards", shards)
		return true, s.traced(ctx, file, items[0].TraceParent, func(ctx context.Context) error { return s.split(ctx, file, shards) })
	}
	items, err = s.claims.API.Queue(ctx, pipeline.StageShardSplitter, -1, 100)
	if err != nil {
		return false, err
	}
	file, candidates := oldest(items)
	if file == "" {
		return s.releaseDue(ctx)
	}
	return true, s.traced(ctx, file, items[0].TraceParent, func(ctx context.Context) error {
		var shards []int
		for _, sh := range candidates {
			ok, err := s.claims.Claim(ctx, pipeline.StageShardSplitter, file, sh)
			if err != nil {
				return err
			}
			if ok {
				shards = append(shards, sh)
			}
		}
		if len(shards) == 0 {
			return nil
		}
		return s.split(ctx, file, shards)
	})
}

// traced runs do under a span continuing the file's trace (traceparent,
// from the pipeline API): its claims and dones carry the span's context,
// which the API hands to the workers.
func (s *Splitter) traced(ctx context.Context, file, traceparent string, do func(context.Context) error) error {
	ctx, span := tracing.Start(ctx, string(pipeline.StageShardSplitter), traceparent, trace.WithAttributes(tracing.File(file)))
	err := do(ctx)
	tracing.End(span, err)
	return err
}

// oldest returns the first item's file and the shards it has among items.
func oldest(items []pipeline.QueueItem) (string, []int) {
	if len(items) == 0 {
		return "", nil
	}
	file := items[0].Filename
	var shards []int
	for _, it := range items {
		if it.Filename == file {
			shards = append(shards, it.Shard)
		}
	}
	return file, shards
}
