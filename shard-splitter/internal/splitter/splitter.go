// Package splitter is the shard-splitter stage: it reads each events file
// once and writes one file per shard, routing by shop_id % N. Returns that
// carry no shop_id go to the shard of their purchase, found in the same file
// or in the order index kept in splitter_db (so also for purchases from
// earlier files or before a restart). A return whose purchase is not known
// yet is held and released into a later file's output once its purchase is
// split, or as an orphan after the hold. Lines that cannot be routed are set
// aside in the malformed file with their line number and reason.
package splitter

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/shard"
	"github.com/shopledger/shopledger/internal/spool"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/stage"
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

// Splitter runs the stage.
type Splitter struct {
	cfg     Config
	db      *sql.DB
	api     *pipeline.Client
	log     *slog.Logger
	now     func() time.Time
	lines   *prometheus.CounterVec
	files   prometheus.Counter
	pending prometheus.Gauge
}

// New builds a splitter on splitter_db.
func New(cfg Config, db *sql.DB, api *pipeline.Client, log *slog.Logger, reg prometheus.Registerer) *Splitter {
	s := &Splitter{cfg: cfg, db: db, api: api, log: log, now: time.Now,
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "splitter_lines_total",
			Help: "Lines split, by outcome (routed, held, released, orphaned, malformed)."}, []string{"outcome"}),
		files:   prometheus.NewCounter(prometheus.CounterOpts{Name: "splitter_files_total", Help: "Events files split."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "splitter_held_returns", Help: "Returns held for their purchase."}),
	}
	reg.MustRegister(s.lines, s.files, s.pending)
	return s
}

var errPermanent = errors.New("permanent")

// Run splits files until ctx ends. Transient errors (database or API unreachable)
// are logged and retried after the poll interval.
func (s *Splitter) Run(ctx context.Context) error {
	return stage.Run(ctx, s.cfg.PollInterval, s.log, s.Step)
}

// Step resumes claimed work or splits the oldest ready file. It reports
// whether it split a file.
func (s *Splitter) Step(ctx context.Context) (bool, error) {
	file, shards, err := s.resumable(ctx)
	if err != nil {
		return false, err
	}
	if file == "" {
		items, err := s.api.Queue(ctx, pipeline.StageShardSplitter, -1, 100)
		if err != nil {
			return false, err
		}
		if len(items) == 0 {
			return false, nil
		}
		file = items[0].Filename
		for _, it := range items {
			if it.Filename != file {
				continue
			}
			ok, err := s.claim(ctx, file, it.Shard)
			if err != nil {
				return false, err
			}
			if ok {
				shards = append(shards, it.Shard)
			}
		}
		if len(shards) == 0 {
			return true, nil
		}
	}
	return true, s.split(ctx, file, shards)
}

// resumable returns a file with shards this splitter had started.
func (s *Splitter) resumable(ctx context.Context) (string, []int, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT filename, shard FROM claim ORDER BY filename, shard")
	if err != nil {
		return "", nil, fmt.Errorf("read claims: %w", err)
	}
	type claim struct {
		file  string
		shard int
	}
	var claims []claim
	for rows.Next() {
		var c claim
		if err := rows.Scan(&c.file, &c.shard); err != nil {
			rows.Close()
			return "", nil, err
		}
		claims = append(claims, c)
	}
	rows.Close()
	var file string
	var shards []int
	statuses := map[string]map[int]string{}
	for _, c := range claims {
		if file != "" && c.file != file {
			break
		}
		st, ok := statuses[c.file]
		if !ok {
			st = map[int]string{}
			f, err := s.api.File(ctx, c.file)
			if err != nil && !errors.Is(err, pipeline.ErrNotFound) {
				return "", nil, err
			}
			for _, r := range f.Shards {
				st[r.Shard] = r.ShardSplitterStatus
			}
			statuses[c.file] = st
		}
		if st[c.shard] != pipeline.StatusStarted {
			if err := s.unclaim(ctx, c.file, c.shard); err != nil {
				return "", nil, err
			}
			continue
		}
		file = c.file
		shards = append(shards, c.shard)
	}
	if file != "" {
		s.log.Info("resuming split", "file", file, "shards", shards)
	}
	return file, shards, nil
}

func (s *Splitter) claim(ctx context.Context, file string, sh int) (bool, error) {
	if _, err := s.db.ExecContext(ctx, "INSERT IGNORE INTO claim (filename, shard) VALUES (?, ?)", file, sh); err != nil {
		return false, fmt.Errorf("journal claim: %w", err)
	}
	_, err := s.api.Transition(ctx, pipeline.StageShardSplitter, pipeline.TransitionStart, file, sh)
	if errors.Is(err, pipeline.ErrConflict) {
		s.log.Warn("task taken by someone else", "file", file, "shard", sh, "err", err)
		return false, s.unclaim(ctx, file, sh)
	}
	return err == nil, err
}

func (s *Splitter) unclaim(ctx context.Context, file string, sh int) error {
	_, err := s.db.ExecContext(ctx, "DELETE FROM claim WHERE filename = ? AND shard = ?", file, sh)
	return err
}

// line is one parsed line of an events file.
type line struct {
	n      int
	raw    []byte
	head   event.Head
	reason string // set for malformed lines
}

type held struct {
	file    string
	line    int
	orderID int64
	key     string
	raw     []byte
	until   time.Time
	shopID  *int64 // the purchase's shop once known
	orphan  bool
	shard   int
	// released says an earlier attempt already released it into this file.
	released bool
}

// split writes the outputs of file for shards and marks them done.
func (s *Splitter) split(ctx context.Context, file string, shards []int) error {
	start := time.Now()
	lines, err := s.read(file)
	if err != nil {
		if errors.Is(err, errPermanent) {
			return s.fail(ctx, file, shards, err)
		}
		return err
	}
	// Orders of this file's purchases, first occurrence wins; the index in
	// splitter_db wins over both.
	fileOrders := map[int64]int64{}
	var returnOrders []int64
	for _, l := range lines {
		if l.reason != "" {
			continue
		}
		switch l.head.Type {
		case event.Purchase:
			if l.head.OrderID != nil {
				if _, ok := fileOrders[*l.head.OrderID]; !ok {
					fileOrders[*l.head.OrderID] = *l.head.ShopID
				}
			}
		case event.Return:
			if l.head.ShopID == nil {
				returnOrders = append(returnOrders, *l.head.OrderID)
			}
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
	for id, shop := range fileOrders {
		if _, ok := known[id]; !ok {
			known[id] = shop
		}
	}
	wanted := map[int]bool{}
	for _, sh := range shards {
		wanted[sh] = true
	}
	now := s.now().UTC()
	outs := map[int]*spool.Writer{}
	defer func() {
		for _, w := range outs {
			w.Abort()
		}
	}()
	for _, sh := range shards {
		w, err := spool.Create(s.cfg.Spool.SplitFile(file, sh))
		if err != nil {
			return err
		}
		outs[sh] = w
	}
	var buf []byte
	write := func(sh int, r event.Routed) error {
		w := outs[sh]
		if w == nil {
			return nil
		}
		buf = event.AppendRouted(buf[:0], r)
		_, err := w.Write(buf)
		return err
	}
	var newHeld []held
	var malformed []line
	counts := map[string]int{}
	for _, l := range lines {
		if l.reason != "" {
			malformed = append(malformed, l)
			counts["malformed"]++
			continue
		}
		r := event.Routed{Src: event.Source{File: file, Line: l.n}, Key: l.head.Key, ShopID: l.head.ShopID, Event: l.raw}
		if l.head.Type == event.Return && r.ShopID == nil {
			shop, ok := known[*l.head.OrderID]
			if !ok {
				newHeld = append(newHeld, held{file: file, line: l.n, orderID: *l.head.OrderID, key: l.head.Key, raw: l.raw})
				counts["held"]++
				continue
			}
			r.ShopID = &shop
		}
		if err := write(shard.For(*r.ShopID, s.cfg.Shards), r); err != nil {
			return err
		}
		counts["routed"]++
	}
	// Release what can go now, only to the shards being written, so that
	// nothing is promised to a shard whose output for this file is final.
	var released []held
	for _, h := range waiting {
		switch shop, ok := known[h.orderID]; {
		case h.released:
			if !h.orphan {
				h.shopID = &shop
			}
		case ok:
			h.shopID = &shop
			h.shard = shard.For(shop, s.cfg.Shards)
		case !now.Before(h.until):
			h.orphan = true
			h.shard = shard.For(h.orderID, s.cfg.Shards)
		default:
			continue
		}
		if !wanted[h.shard] {
			continue
		}
		r := event.Routed{Src: event.Source{File: h.file, Line: h.line}, Key: h.key, ShopID: h.shopID, Orphan: h.orphan, Event: h.raw}
		if err := write(h.shard, r); err != nil {
			return err
		}
		released = append(released, h)
		if h.orphan {
			counts["orphaned"]++
		} else {
			counts["released"]++
		}
	}
	if err := s.writeMalformed(file, malformed); err != nil {
		return err
	}
	if err := s.record(ctx, file, fileOrders, newHeld, released, now); err != nil {
		return err
	}
	for _, sh := range shards {
		if err := outs[sh].Commit(); err != nil {
			return err
		}
		delete(outs, sh)
	}
	for _, sh := range shards {
		if _, err := s.api.Transition(ctx, pipeline.StageShardSplitter, pipeline.TransitionDone, file, sh); err != nil {
			return fmt.Errorf("mark %s shard %d done: %w", file, sh, err)
		}
		if err := s.unclaim(ctx, file, sh); err != nil {
			return err
		}
	}
	for k, v := range counts {
		s.lines.WithLabelValues(k).Add(float64(v))
	}
	s.files.Inc()
	s.updateHeldGauge(ctx)
	s.log.Info("file split", "file", file, "shards", shards, "lines", len(lines), "routed", counts["routed"],
		"malformed", counts["malformed"], "held", counts["held"], "released", counts["released"],
		"orphaned", counts["orphaned"], "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// read parses every line of the events file.
func (s *Splitter) read(file string) ([]line, error) {
	path := s.cfg.Spool.EventsFile(file)
	var lines []line
	err := spool.ReadLines(path, func(n int, raw []byte) error {
		// The scanner reuses its buffer: keep a copy.
		raw = bytes.Clone(bytes.TrimRight(raw, "\r"))
		l := line{n: n, raw: raw}
		if len(bytes.TrimSpace(raw)) == 0 {
			l.reason = "empty line"
		} else if h, err := event.ParseHead(raw); err != nil {
			l.reason = err.Error()
		} else {
			l.head = h
		}
		if l.reason != "" {
			s.log.Warn("malformed line set aside", "file", path, "line", n, "reason", l.reason)
		}
		lines = append(lines, l)
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: events file %s is missing", errPermanent, path)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errPermanent, err)
	}
	return lines, nil
}

func (s *Splitter) fail(ctx context.Context, file string, shards []int, reason error) error {
	s.log.Error("split failed", "file", file, "shards", shards, "reason", reason)
	for _, sh := range shards {
		if _, err := s.api.Transition(ctx, pipeline.StageShardSplitter, pipeline.TransitionFail, file, sh); err != nil {
			return err
		}
		if err := s.unclaim(ctx, file, sh); err != nil {
			return err
		}
	}
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

// heldReturns lists returns held from earlier files that are still waiting
// or were released into file by an earlier attempt.
func (s *Splitter) heldReturns(ctx context.Context, file string) ([]held, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT filename, line, order_id, event_key, raw, hold_until, released_shard, orphan
		FROM held_return WHERE (released_in IS NULL OR released_in = ?) AND filename <> ? ORDER BY filename, line`, file, file)
	if err != nil {
		return nil, fmt.Errorf("read held returns: %w", err)
	}
	defer rows.Close()
	var out []held
	for rows.Next() {
		var h held
		var sh sql.NullInt64
		if err := rows.Scan(&h.file, &h.line, &h.orderID, &h.key, &h.raw, &h.until, &sh, &h.orphan); err != nil {
			return nil, err
		}
		h.released, h.shard = sh.Valid, int(sh.Int64)
		out = append(out, h)
	}
	return out, rows.Err()
}

// routes returns the shop of every known order among ids.
func (s *Splitter) routes(ctx context.Context, ids []int64) (map[int64]int64, error) {
	out := map[int64]int64{}
	err := sqldb.QueryIn(ctx, s.db, "SELECT order_id, shop_id FROM order_route WHERE order_id IN (%s)", ids, func(r *sql.Rows) error {
		var id, shop int64
		if err := r.Scan(&id, &shop); err != nil {
			return err
		}
		out[id] = shop
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read order routes: %w", err)
	}
	return out, nil
}

// record stores, in one transaction, the file's order routes, its newly held
// returns and the releases written into its outputs.
func (s *Splitter) record(ctx context.Context, file string, orders map[int64]int64, newHeld, released []held, now time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ids := make([]int64, 0, len(orders))
	for id := range orders {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	routes := sqldb.Bulk{Head: "INSERT IGNORE INTO order_route (order_id, shop_id, filename) VALUES ", Cols: 3}
	for _, id := range ids {
		routes.Add(id, orders[id], file)
	}
	if err := routes.Exec(ctx, tx); err != nil {
		return fmt.Errorf("record order routes: %w", err)
	}
	until := now.Add(s.cfg.ReturnHold)
	for _, h := range newHeld {
		if _, err := tx.ExecContext(ctx, `INSERT IGNORE INTO held_return (filename, line, order_id, event_key, raw, hold_until)
			VALUES (?, ?, ?, ?, ?, ?)`, h.file, h.line, h.orderID, h.key, string(h.raw), until); err != nil {
			return fmt.Errorf("hold return %s:%d: %w", h.file, h.line, err)
		}
	}
	for _, h := range released {
		if _, err := tx.ExecContext(ctx, `UPDATE held_return SET released_in = ?, released_shard = ?, orphan = ?
			WHERE filename = ? AND line = ? AND released_in IS NULL`, file, h.shard, h.orphan, h.file, h.line); err != nil {
			return fmt.Errorf("release return %s:%d: %w", h.file, h.line, err)
		}
	}
	return tx.Commit()
}

func (s *Splitter) updateHeldGauge(ctx context.Context) {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM held_return WHERE released_in IS NULL").Scan(&n); err == nil {
		s.pending.Set(float64(n))
	}
}
