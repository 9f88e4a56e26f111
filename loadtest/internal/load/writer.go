package load

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/retry"
	"github.com/shopledger/shopledger/internal/shard"
	"github.com/shopledger/shopledger/internal/spool"
)

// Producer is the name the run registers its files under.
const Producer = "load-test"

// stemYears is how far back the run's file names lie: a live producer
// names its files by the current second, so the run's never collide with
// one's, and they are easy to tell apart (1926… for a run in 2026).
const stemYears = 100

// writer writes the run's files as a producer does (SPEC §2): register
// the stem for every shard, write the file under a temporary name and
// rename it without replacing anything, mark event-ingest done. File k is
// meant to be done at start + k × interval; a file written late is
// measured from that time all the same (no coordinated omission).
type writer struct {
	cfg     *Config
	api     *pipeline.Client
	b       *builder
	rec     *recorder
	track   *tracker
	perFile int
	stems   time.Time // the next file name's time
}

func newWriter(cfg *Config, api *pipeline.Client, rec *recorder, track *tracker) *writer {
	return &writer{cfg: cfg, api: api, rec: rec, track: track,
		b:       newBuilder(cfg.World, cfg.Seed, cfg.BadLines, cfg.Shards),
		perFile: cfg.eventsPerFile(),
		stems:   rec.start.UTC().AddDate(-stemYears, 0, 0).Truncate(time.Second)}
}

// run writes files until the load ends.
func (w *writer) run(ctx context.Context) {
	end := w.rec.start.Add(w.cfg.Duration)
	for k := 0; ; k++ {
		intended := w.rec.start.Add(time.Duration(k) * w.cfg.FileInterval)
		if !intended.Before(end) || ctx.Err() != nil {
			return
		}
		w.rec.update(intended, func(s *Second) { s.Offered += w.perFile })
		f := &file{k: k, intended: intended}
		if !retry.Sleep(ctx, time.Until(intended)) {
			return
		}
		if err := w.write(ctx, f); err != nil {
			if ctx.Err() != nil {
				return
			}
			w.track.writeFailed(fmt.Sprintf("file %d (%s): %v", k, f.stem, err))
			w.rec.update(time.Now(), func(s *Second) { s.WriteErrors++ })
			continue
		}
		w.rec.update(f.done, func(s *Second) { s.Written += f.events })
		w.track.written(f)
	}
}

// write builds and writes one file under a stem no one took.
func (w *writer) write(ctx context.Context, f *file) error {
	for {
		f.stem = w.stems.Format("20060102150405")
		w.stems = w.stems.Add(time.Second)
		reg, err := w.api.Register(ctx, f.stem, shard.All(w.cfg.Shards), Producer)
		if errors.Is(err, pipeline.ErrConflict) {
			continue // another producer's stem
		}
		if err != nil {
			return fmt.Errorf("register: %w", err)
		}
		if reg.Created == 0 {
			if _, err := os.Stat(w.cfg.Shared.EventsFile(f.stem)); err == nil {
				continue // an earlier run's file
			}
			// Registered by us without a file: a register whose answer was
			// lost and was retried, or a run that died before writing it.
		}
		break
	}
	w.b.build(f, w.perFile, time.Now())
	out, err := spool.Create(w.cfg.Shared.EventsFile(f.stem))
	if err != nil {
		return err
	}
	for _, l := range f.lines {
		out.Write(l)
		out.WriteByte('\n')
	}
	if err := out.CommitNew(); err != nil {
		return err
	}
	f.lines = nil
	// The file is on disk: done must go through, or nothing takes it.
	wait := retry.Default()
	for {
		_, err := w.api.IngestDone(ctx, f.stem)
		if err == nil {
			break
		}
		if !retry.Sleep(ctx, wait.Next()) {
			return fmt.Errorf("event-ingest done: %w", err)
		}
	}
	f.done = time.Now()
	return nil
}
