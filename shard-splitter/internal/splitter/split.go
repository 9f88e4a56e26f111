package splitter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/spool"
)

// split writes the outputs of file for shards and marks them done.
func (s *Splitter) split(ctx context.Context, file string, shards []int) error {
	start := time.Now()
	f, err := s.claims.API.File(ctx, file)
	if err != nil {
		return err
	}
	lines, err := s.read(file)
	switch {
	case errors.Is(err, os.ErrNotExist) && f.Producer == pipeline.ReleaseProducer:
		lines = nil // a release file: only held returns go into it
	case errors.Is(err, os.ErrNotExist):
		return s.fail(ctx, file, shards, fmt.Errorf("%w: events file %s is missing", errPermanent, s.cfg.Spool.EventsFile(file)))
	case err != nil:
		return err // an I/O error: retried
	}
	orders := fileOrders(lines)
	var returnOrders []int64
	for _, l := range lines {
		if l.reason == "" && l.head.Type == event.Return && l.head.ShopID == nil {
			returnOrders = append(returnOrders, *l.head.OrderID)
		}
	}
	// Held returns from earlier files: already released into this file by an
	// earlier attempt, or still waiting.
	waiting, err := s.heldReturns(ctx, file)
	if err != nil {
		return err
	}
	for _, h := range waiting {
		returnOrders = append(returnOrders, h.orderID)
	}
	known, err := s.routes(ctx, returnOrders)
	if err != nil {
		return err
	}
	for id, shop := range orders { // the index in splitter_db wins
		if _, ok := known[id]; !ok {
			known[id] = shop
		}
	}
	wanted := map[int]bool{}
	for _, sh := range shards {
		wanted[sh] = true
	}
	now := s.now().UTC()
	p := route(file, lines, known, waiting, now, s.cfg.Shards, wanted)
	if err := s.registerMissing(ctx, f, p.targets); err != nil {
		return err
	}
	outs, err := s.writeOutputs(file, shards, p)
	if err != nil {
		return err
	}
	defer func() {
		for _, w := range outs {
			w.Abort()
		}
	}()
	if err := s.writeMalformed(file, p.malformed); err != nil {
		return err
	}
	if err := s.record(ctx, file, orders, p.held, p.released, now); err != nil {
		return err
	}
	for _, sh := range shards {
		if err := outs[sh].Commit(); err != nil {
			return err
		}
		delete(outs, sh)
	}
	for _, sh := range shards {
		if err := s.claims.Finish(ctx, pipeline.StageShardSplitter, file, sh, false); err != nil {
			return err
		}
	}
	for k, v := range p.counts {
		s.lines.WithLabelValues(k).Add(float64(v))
	}
	s.stage.File(pipeline.StageShardSplitter, false, time.Since(start))
	s.stage.Lines(pipeline.StageShardSplitter, len(lines))
	s.updateHeldGauge(ctx)
	s.log.Info("file split", "file", file, "shards", shards, "lines", len(lines), "routed", p.counts["routed"],
		"malformed", p.counts["malformed"], "held", p.counts["held"], "released", p.counts["released"],
		"orphaned", p.counts["orphaned"], "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// registerMissing registers the file for shards its lines route to but
// that its producer did not register: without a row, a shard's lines
// would never be split for it. The new rows are split in a later pass.
func (s *Splitter) registerMissing(ctx context.Context, f pipeline.FileResponse, targets map[int]bool) error {
	var missing []int
	for sh := range targets {
		if !slices.ContainsFunc(f.Shards, func(r pipeline.ShardStatus) bool { return r.Shard == sh }) {
			missing = append(missing, sh)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	s.log.Warn("file not registered for every shard its lines go to; registering the others", "file", f.Filename, "shards", missing)
	if _, err := s.claims.API.Register(ctx, f.Filename, missing, f.Producer); err != nil {
		return fmt.Errorf("register %s for shards %v: %w", f.Filename, missing, err)
	}
	if _, err := s.claims.API.IngestDone(ctx, f.Filename); err != nil {
		return fmt.Errorf("register %s for shards %v: %w", f.Filename, missing, err)
	}
	return nil
}

// writeOutputs writes the plan's lines for shards under temporary names.
func (s *Splitter) writeOutputs(file string, shards []int, p plan) (map[int]*spool.Writer, error) {
	outs := map[int]*spool.Writer{}
	var buf []byte
	for _, sh := range shards {
		w, err := spool.Create(s.cfg.Spool.SplitFile(file, sh))
		if err != nil {
			for _, o := range outs {
				o.Abort()
			}
			return nil, err
		}
		outs[sh] = w
		for _, r := range p.out[sh] {
			buf = event.AppendRouted(buf[:0], r)
			if _, err := w.Write(buf); err != nil {
				for _, o := range outs {
					o.Abort()
				}
				return nil, err
			}
		}
	}
	return outs, nil
}

// read parses every line of the events file. A line longer than
// spool.MaxEventLine is set aside as malformed, like any unreadable line.
func (s *Splitter) read(file string) ([]line, error) {
	path := s.cfg.Spool.EventsFile(file)
	var lines []line
	err := spool.ReadLines(path, spool.MaxEventLine, func(sl spool.Line) error {
		l := line{n: sl.N}
		switch {
		case sl.TooLong():
			l.reason = fmt.Sprintf("line of %d bytes is longer than the limit of %d", sl.Len, spool.MaxEventLine)
		case len(bytes.TrimSpace(sl.Bytes)) == 0:
			l.reason = "empty line"
		default:
			// The reader reuses its buffer: keep a copy.
			l.raw = bytes.Clone(bytes.TrimRight(sl.Bytes, "\r"))
			if h, err := event.ParseHead(l.raw); err != nil {
				l.reason = err.Error()
			} else {
				l.head = h
			}
		}
		if l.reason != "" {
			s.log.Warn("malformed line set aside", "file", path, "line", sl.N, "reason", l.reason)
		}
		lines = append(lines, l)
		return nil
	})
	return lines, err
}

func (s *Splitter) fail(ctx context.Context, file string, shards []int, reason error) error {
	s.log.ErrorContext(ctx, "split failed", "file", file, "shards", shards, "reason", reason)
	for _, sh := range shards {
		if err := s.claims.Finish(ctx, pipeline.StageShardSplitter, file, sh, true); err != nil {
			return err
		}
	}
	s.stage.File(pipeline.StageShardSplitter, true, 0)
	return nil
}

// Malformed is one line of a malformed file.
type Malformed struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
	Raw    string `json:"raw"`
}

func (s *Splitter) writeMalformed(file string, lines []line) error {
	path := s.cfg.Spool.MalformedFile(file)
	if len(lines) == 0 {
		os.Remove(path)
		return nil
	}
	w, err := spool.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	for _, l := range lines {
		if err := enc.Encode(Malformed{Line: l.n, Reason: l.reason, Raw: string(l.raw)}); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Commit()
}
