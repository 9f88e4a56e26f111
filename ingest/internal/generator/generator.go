// Package generator is the event-ingest stage: on every generation_interval
// boundary it writes one events file of 1..min(events_per_batch,
// max_batch_size) events, registering the file with the pipeline API before
// writing and marking event-ingest done after (SPEC §2). Events posted to
// its HTTP API are written into the next file.
package generator

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/eventgen"
	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/shard"
	"github.com/shopledger/shopledger/internal/spool"
	"github.com/shopledger/shopledger/internal/stage"
	"github.com/shopledger/shopledger/internal/tracing"
)

// OpenAPI is the ingest API's OpenAPI 3 description, served at
// /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// Config is what the generator needs.
type Config struct {
	Spool          spool.Dir
	Interval       time.Duration // generation_interval, whole seconds
	EventsPerBatch int
	MaxBatchSize   int
	Shards         int
	// MaxPayloadSize bounds the body of POST /api/v1/events in bytes.
	MaxPayloadSize int64
	// ValidationTimeout bounds the validation of one posted body.
	ValidationTimeout time.Duration
	World             eventgen.World
	Seed              uint64
	// MaxFiles stops the generator after this many files (0: never).
	MaxFiles int
	// Producer names this generator to the pipeline API: a stem another
	// producer registered is refused rather than overwritten.
	Producer string
}

// Stats is the body of GET /api/v1/events/stats.
type Stats struct {
	StartedAt         time.Time      `json:"started_at"`
	FilesWritten      int            `json:"files_written"`
	EventsWritten     int            `json:"events_written"`
	EventsByType      map[string]int `json:"events_by_type"`
	ExternalAccepted  int            `json:"external_accepted"`
	ExternalQueued    int            `json:"external_queued"`
	LastFile          string         `json:"last_file,omitempty"`
	LastTick          *time.Time     `json:"last_tick,omitempty"`
	RegisterFailures  int            `json:"register_failures"`
	DoneFailures      int            `json:"done_failures"`
	SkippedTicks      int            `json:"skipped_ticks"`
	PendingDoneMarked []string       `json:"pending_done,omitempty"`
}

// Generator writes events files.
type Generator struct {
	cfg   Config
	api   *pipeline.Client
	log   *slog.Logger
	model *eventgen.Model

	mu       sync.Mutex
	stats    Stats
	external []queued // posted requests on disk, waiting for a tick
	undone   []string // files written whose done call has not gone through

	events *prometheus.CounterVec
	stage  *stage.Metrics
}

// New builds a generator, with the posted events a previous run accepted
// and did not write yet.
func New(cfg Config, api *pipeline.Client, log *slog.Logger, reg prometheus.Registerer) (*Generator, error) {
	g := &Generator{cfg: cfg, api: api, log: log, model: eventgen.New(cfg.World, cfg.Seed),
		stats: Stats{StartedAt: time.Now().UTC(), EventsByType: map[string]int{}},
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shopledger", Subsystem: "ingest", Name: "events_total",
			Help: "Events written into events files, by type."}, []string{"type"}),
		stage: stage.NewMetrics(reg),
	}
	reg.MustRegister(g.events)
	if err := os.MkdirAll(cfg.Spool.IngestQueueDir(), 0o755); err != nil {
		return nil, err
	}
	q, err := loadQueue(cfg.Spool.IngestQueueDir())
	if err != nil {
		return nil, err
	}
	g.external = q
	g.stats.ExternalQueued = countLines(q)
	if len(q) > 0 {
		log.Info("posted events from before a restart are queued for the next file", "requests", len(q), "events", countLines(q))
	}
	return g, nil
}

// Run ticks until ctx ends (or MaxFiles files are written).
func (g *Generator) Run(ctx context.Context) error {
	if err := os.MkdirAll(g.cfg.Spool.EventsDir(), 0o755); err != nil {
		return err
	}
	g.finishEarlierFiles(ctx)
	g.settleRegistrations(ctx)
	for ctx.Err() == nil {
		next := time.Now().Truncate(g.cfg.Interval).Add(g.cfg.Interval)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(next)):
		}
		if err := g.Tick(ctx, next.UTC()); err != nil {
			g.log.Error("tick failed", "tick", next.UTC().Format(time.RFC3339), "err", err)
		}
		if g.cfg.MaxFiles > 0 && g.snapshot().FilesWritten >= g.cfg.MaxFiles {
			g.log.Info("wrote the configured number of files; stopping", "files", g.cfg.MaxFiles)
			return nil
		}
	}
	return nil
}

// finishEarlierFiles marks event-ingest done for complete files left in the
// events folder with their ingest still started: a producer (this one before
// a crash) wrote them but its done call never went through.
func (g *Generator) finishEarlierFiles(ctx context.Context) {
	names, _ := filepath.Glob(filepath.Join(g.cfg.Spool.EventsDir(), "*.event-ingest.txt"))
	sort.Strings(names)
	if len(names) > 200 {
		names = names[len(names)-200:]
	}
	for _, name := range names {
		stem := spool.StemOf(name)
		f, err := g.api.File(ctx, stem)
		if err != nil {
			continue
		}
		for _, s := range f.Shards {
			if s.EventIngestStatus == pipeline.StatusStarted {
				if _, err := g.api.IngestDone(ctx, stem); err == nil {
					g.log.Info("marked an earlier file's ingest done", "file", stem)
				}
				break
			}
		}
	}
}

// Tick writes the file of tick t, under a span that the later stages
// continue (the pipeline API keeps its context with the file's rows).
func (g *Generator) Tick(ctx context.Context, t time.Time) (err error) {
	start := time.Now()
	g.retryDone(ctx)
	g.settleRegistrations(ctx)
	stem := t.Format("20060102150405")
	ctx, span := tracing.Start(ctx, string(pipeline.StageEventIngest), "", trace.WithAttributes(tracing.File(stem)))
	defer func() { tracing.End(span, err) }()
	path := g.cfg.Spool.EventsFile(stem)
	if _, err := os.Stat(path); err == nil {
		g.count(func(s *Stats) { s.SkippedTicks++ })
		return fmt.Errorf("file %s already exists (restarted within the same tick?); tick skipped", path)
	}
	limit := g.limit()
	g.mu.Lock()
	taken := 0 // whole requests, as many as fit
	for n := 0; taken < len(g.external) && n+len(g.external[taken].lines) <= limit; taken++ {
		n += len(g.external[taken].lines)
	}
	ext := g.external[:taken:taken]
	g.external = g.external[taken:]
	g.stats.ExternalQueued = countLines(g.external)
	g.mu.Unlock()
	var lines [][]byte
	for _, q := range ext {
		lines = append(lines, q.lines...)
	}
	n := 1 + g.model.IntN(limit)
	lines = append(lines, g.model.Batch(stem, t, max(0, n-len(lines)))...)
	if err := g.mark(stem); err != nil {
		g.requeue(ext)
		return err
	}
	if _, err := g.api.Register(ctx, stem, shard.All(g.cfg.Shards), g.cfg.Producer); err != nil {
		g.count(func(s *Stats) { s.RegisterFailures++ })
		g.requeue(ext)
		return fmt.Errorf("register %s (settled at the next tick if it went through): %w", stem, err)
	}
	w, err := spool.Create(path)
	if err != nil {
		g.requeue(ext)
		return err
	}
	byType := map[string]int{}
	for _, l := range lines {
		w.Write(l)
		w.WriteByte('\n')
		if h, err := event.ParseHead(l); err == nil {
			byType[h.Type.String()]++
		}
	}
	if err := w.CommitNew(); err != nil { // never over another producer's file
		g.requeue(ext)
		return err
	}
	g.unmark(stem)
	if err := dequeue(ext); err != nil {
		g.log.Error("remove queued requests now written; they will be written again and recorded as duplicates", "file", stem, "err", err)
	}
	g.count(func(s *Stats) {
		s.FilesWritten++
		s.EventsWritten += len(lines)
		s.LastFile = stem
		s.LastTick = &t
		for k, v := range byType {
			s.EventsByType[k] += v
		}
	})
	for k, v := range byType {
		g.events.WithLabelValues(k).Add(float64(v))
	}
	g.stage.File(pipeline.StageEventIngest, false, time.Since(start))
	g.stage.Lines(pipeline.StageEventIngest, len(lines))
	if _, err := g.api.IngestDone(ctx, stem); err != nil {
		g.count(func(s *Stats) { s.DoneFailures++ })
		g.mu.Lock()
		g.undone = append(g.undone, stem)
		g.mu.Unlock()
		return fmt.Errorf("mark %s done (will retry next tick): %w", stem, err)
	}
	g.log.DebugContext(ctx, "file written", "file", stem, "events", len(lines))
	return nil
}

func (g *Generator) retryDone(ctx context.Context) {
	g.mu.Lock()
	undone := g.undone
	g.undone = nil
	g.mu.Unlock()
	for i, stem := range undone {
		if _, err := g.api.IngestDone(ctx, stem); err != nil {
			g.mu.Lock()
			g.undone = append(g.undone, undone[i:]...)
			g.mu.Unlock()
			return
		}
	}
}

func (g *Generator) requeue(qs []queued) {
	if len(qs) == 0 {
		return
	}
	g.mu.Lock()
	g.external = append(qs, g.external...)
	g.stats.ExternalQueued = countLines(g.external)
	g.mu.Unlock()
}

// limit is the most events of one file, and of one posted request:
// min(events_per_batch, max_batch_size).
func (g *Generator) limit() int { return min(g.cfg.EventsPerBatch, g.cfg.MaxBatchSize) }

func (g *Generator) count(f func(*Stats)) {
	g.mu.Lock()
	f(&g.stats)
	g.mu.Unlock()
}

func (g *Generator) snapshot() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.EventsByType = map[string]int{}
	for k, v := range g.stats.EventsByType {
		s.EventsByType[k] = v
	}
	s.PendingDoneMarked = append([]string(nil), g.undone...)
	return s
}

// maxQueued bounds posted events waiting for a tick.
const maxQueued = 100_000

// StatsHandler serves GET /api/v1/events/stats.
func (g *Generator) StatsHandler(w http.ResponseWriter, _ *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, g.snapshot())
}

// PostHandler serves POST /api/v1/events: one event object or an array of
// at most min(events_per_batch, max_batch_size) of them, each validated as
// the shard worker would; all are queued for the next file or none is. The
// 202 answer means the events are on disk: a crash after it loses none.
func (g *Generator) PostHandler(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.ValidationTimeout)
	defer cancel()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxPayloadSize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			httpapi.Error(w, http.StatusRequestEntityTooLarge, "body larger than max_payload_size (%d bytes)", mbe.Limit)
			return
		}
		httpapi.Error(w, http.StatusBadRequest, "read body: %v", err)
		return
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		raws = []json.RawMessage{body}
	}
	if len(raws) == 0 {
		httpapi.Error(w, http.StatusBadRequest, "no event: post one event object or a non-empty array of them")
		return
	}
	if len(raws) > g.limit() {
		httpapi.Error(w, http.StatusRequestEntityTooLarge, "%d events in one request; at most %d (min(events_per_batch, max_batch_size)) go into one file",
			len(raws), g.limit())
		return
	}
	lines := make([][]byte, 0, len(raws))
	for i, raw := range raws {
		if ctx.Err() != nil {
			httpapi.Error(w, http.StatusRequestTimeout, "validation took longer than validation_timeout (%s)", g.cfg.ValidationTimeout)
			return
		}
		h, err := event.ParseHead(raw)
		if err == nil {
			_, err = event.Decode(raw, h.Type)
		}
		if err != nil {
			httpapi.Error(w, http.StatusBadRequest, "event %d: %v", i, err)
			return
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			httpapi.Error(w, http.StatusBadRequest, "event %d: %v", i, err)
			return
		}
		lines = append(lines, buf.Bytes())
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if countLines(g.external)+len(lines) > maxQueued {
		httpapi.Error(w, http.StatusTooManyRequests, "queue full (%d events waiting); retry later", maxQueued)
		return
	}
	q, err := enqueue(g.cfg.Spool.IngestQueueDir(), lines)
	if err != nil {
		g.log.Error("posted events not accepted: cannot write them to disk", "err", err)
		w.Header().Set("Retry-After", "5")
		httpapi.Error(w, http.StatusServiceUnavailable, "cannot store the events durably (%v); nothing was accepted, retry later", err)
		return
	}
	g.external = append(g.external, q)
	g.stats.ExternalAccepted += len(lines)
	g.stats.ExternalQueued = countLines(g.external)
	httpapi.WriteJSON(w, http.StatusAccepted, map[string]int{"accepted": len(lines)})
}
