package generator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/spool"
)

// A file registered whose events file was never written would hold every
// later stage of it, and the audit, forever: a register whose answer was
// lost (pipelineapi or its database killed after the commit) looks failed,
// and a crash can come between the register and the file. So a marker,
// .<stem>.registering in the events folder, is written before the register
// and removed once the file is there; settleRegistrations settles the
// markers left behind.

func (g *Generator) markerPath(stem string) string {
	return filepath.Join(g.cfg.Spool.EventsDir(), "."+stem+".registering")
}

// mark writes stem's marker, synced: it must outlive a crash right after
// the register.
func (g *Generator) mark(stem string) error {
	f, err := os.Create(g.markerPath(stem))
	if err != nil {
		return fmt.Errorf("register %s: %w", stem, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("register %s: %w", stem, err)
	}
	return nil
}

func (g *Generator) unmark(stem string) {
	if err := os.Remove(g.markerPath(stem)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		g.log.Warn("remove a registration marker", "file", stem, "err", err)
	}
}

// settleRegistrations settles the markers of earlier ticks: a stem the
// pipeline API does not know, or knows as another producer's, was not
// registered by us; one registered by us without its events file gets an
// empty file (its generated events were never acknowledged to anyone, and
// posted ones stay queued for a later file) and its ingest done, so that
// the file goes through every stage. Markers stay while the API does not
// answer.
func (g *Generator) settleRegistrations(ctx context.Context) {
	markers, _ := filepath.Glob(filepath.Join(g.cfg.Spool.EventsDir(), ".*.registering"))
	for _, m := range markers {
		stem := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), "."), ".registering")
		if _, err := os.Stat(g.cfg.Spool.EventsFile(stem)); err == nil {
			g.unmark(stem) // written: finishEarlierFiles or the done retries take it from here
			continue
		}
		f, err := g.api.File(ctx, stem)
		switch {
		case errors.Is(err, pipeline.ErrNotFound):
			g.unmark(stem)
			continue
		case err != nil:
			return // the API is away: next tick
		case f.Producer != g.cfg.Producer:
			g.unmark(stem)
			continue
		}
		w, err := spool.Create(g.cfg.Spool.EventsFile(stem))
		if err == nil {
			err = w.CommitNew()
		}
		if err != nil && !errors.Is(err, spool.ErrExists) {
			g.log.Error("write the empty events file of a registration left without one", "file", stem, "err", err)
			return
		}
		g.log.Warn("a file registered without its events file (the register's answer lost, or a crash before the file): written empty",
			"file", stem)
		g.unmark(stem)
		if _, err := g.api.IngestDone(ctx, stem); err != nil {
			g.mu.Lock()
			g.undone = append(g.undone, stem)
			g.mu.Unlock()
		}
	}
}
