package splitter

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/shard"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// heldReturns lists returns held from earlier files that are still waiting
// or were released into file by an earlier attempt.
func (s *Splitter) heldReturns(ctx context.Context, file string) ([]held, error) {
	var out []held
	err := sqldb.Each(ctx, s.db, `SELECT filename, line, order_id, event_key, raw, hold_until, released_shard, orphan
		FROM held_return WHERE (released_in IS NULL OR released_in = ?) AND filename <> ? ORDER BY filename, line`, func(r *sql.Rows) error {
		var h held
		var sh sql.NullInt64
		if err := r.Scan(&h.file, &h.line, &h.orderID, &h.key, &h.raw, &h.until, &sh, &h.orphan); err != nil {
			return err
		}
		h.released, h.shard = sh.Valid, int(sh.Int64)
		out = append(out, h)
		return nil
	}, file, file)
	if err != nil {
		return nil, fmt.Errorf("read held returns: %w", err)
	}
	return out, nil
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
	// The first route of an order wins. Never INSERT IGNORE: it turns any
	// error, a value the column refuses included, into a warning and a lost row.
	routes := sqldb.Bulk{Head: "INSERT INTO order_route (order_id, shop_id, filename) VALUES ", Tail: " ON DUPLICATE KEY UPDATE order_id = order_id", Cols: 3}
	for _, id := range slices.Sorted(maps.Keys(orders)) {
		routes.Add(id, orders[id], file)
	}
	if err := routes.Exec(ctx, tx); err != nil {
		return fmt.Errorf("record order routes: %w", err)
	}
	hold := sqldb.Bulk{Head: "INSERT INTO held_return (filename, line, order_id, event_key, raw, hold_until) VALUES ",
		Tail: " ON DUPLICATE KEY UPDATE line = line", Cols: 6}
	until := now.Add(s.cfg.ReturnHold)
	for _, h := range newHeld {
		hold.Add(h.file, h.line, h.orderID, h.key, h.raw, until) // raw as bytes: any line, however odd, is stored
	}
	if err := hold.Exec(ctx, tx); err != nil {
		return fmt.Errorf("hold returns of %s: %w", file, err)
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

// releaseDue makes a release file when held returns can go and no file
// comes to carry them: their purchase is known, or their hold is over
// (they go as orphans). The file is an ordinary pipeline file of the
// splitter's own (producer pipeline.ReleaseProducer, no events file), named
// after the current second; the next Step splits it like any other, with
// only held returns in it. It reports whether it made one.
func (s *Splitter) releaseDue(ctx context.Context) (bool, error) {
	now := s.now().UTC()
	targets := map[int]bool{}
	err := sqldb.Each(ctx, s.db, `SELECT h.order_id, r.shop_id FROM held_return h LEFT JOIN order_route r ON r.order_id = h.order_id
		WHERE h.released_in IS NULL AND (r.order_id IS NOT NULL OR h.hold_until <= ?)`, func(r *sql.Rows) error {
		var order int64
		var shop sql.NullInt64
		if err := r.Scan(&order, &shop); err != nil {
			return err
		}
		if shop.Valid {
			targets[shard.For(shop.Int64, s.cfg.Shards)] = true
		} else {
			targets[shard.For(order, s.cfg.Shards)] = true
		}
		return nil
	}, now)
	if err != nil {
		return false, fmt.Errorf("held returns due: %w", err)
	}
	if len(targets) == 0 {
		return false, nil
	}
	stem := now.Format("20060102150405")
	shards := slices.Sorted(maps.Keys(targets))
	if _, err := s.claims.API.Register(ctx, stem, shards, pipeline.ReleaseProducer); err != nil {
		if errors.Is(err, pipeline.ErrConflict) {
			return false, nil // a producer has this second; the next one will do
		}
		return false, fmt.Errorf("register release file %s: %w", stem, err)
	}
	if _, err := s.claims.API.IngestDone(ctx, stem); err != nil {
		return false, fmt.Errorf("register release file %s: %w", stem, err)
	}
	s.log.Info("release file made for held returns that are due", "file", stem, "shards", shards)
	return true, nil
}
