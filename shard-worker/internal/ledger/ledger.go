// Package ledger applies prepared events to a shard database under the rules
// of SPEC §4: each line is recorded exactly once in `events` (applied,
// rejected with its reason, duplicate, or pending), duplicates are applied
// once, stock never goes below zero, closed shops sell nothing, purchases
// need the balance at the shop's price, returns must match their purchase,
// and every balance change is an account_transaction.
//
// A batch is one transaction in three steps: load.go reads in bulk the rows
// the batch may touch, rules.go decides every event in memory in line order,
// write.go stores the results with multi-row statements. This is correct
// because the shard worker is the shard's only writer.
package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/money"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/tracing"
)

// Config holds the rules' parameters.
type Config struct {
	Shard int
	// InitialBalance is credited to a user the first time the shard sees them.
	InitialBalance money.Cents
	// PendingDelay is how long a return waits for its purchase before it is
	// rejected as orphaned.
	PendingDelay time.Duration
	// BulkLoad writes the rows new to the shard with LOAD DATA LOCAL
	// INFILE when the server allows it (local_infile), with multi-row
	// INSERTs otherwise or when false.
	BulkLoad bool
}

// Ledger applies batches to one shard.
type Ledger struct {
	db  *sql.DB
	cfg Config
	now func() time.Time
	// load caches whether the server allows LOAD DATA LOCAL INFILE:
	// loadUnknown until asked, again after the server refused one.
	load atomic.Int32
}

const (
	loadUnknown int32 = iota
	loadOn
	loadOff
)

// bulkLoad reports whether this batch writes its new rows with LOAD DATA.
func (l *Ledger) bulkLoad(ctx context.Context) (bool, error) {
	if !l.cfg.BulkLoad {
		return false, nil
	}
	switch l.load.Load() {
	case loadOn:
		return true, nil
	case loadOff:
		return false, nil
	}
	on, err := sqldb.LocalInfile(ctx, l.db)
	if err != nil {
		return false, err
	}
	if on {
		l.load.Store(loadOn)
	} else {
		l.load.Store(loadOff)
	}
	return on, nil
}

// refused forgets what bulkLoad knew when err says the server refused a
// LOAD DATA: the next batch asks again (and uses INSERTs if it is off).
func (l *Ledger) refused(err error) error {
	if sqldb.LoadRefused(err) {
		l.load.Store(loadUnknown)
	}
	return err
}

// New returns a ledger on db.
func New(db *sql.DB, cfg Config) *Ledger {
	return &Ledger{db: db, cfg: cfg, now: time.Now}
}

// Stats counts what a batch did, by events row status.
type Stats struct {
	Applied, Rejected, Duplicate, Pending int
	// Resolved counts earlier pending returns settled by this batch.
	Resolved int
	// Published counts the domain events written to the outbox.
	Published int
}

// Add sums s and o.
func (s *Stats) Add(o Stats) {
	s.Applied += o.Applied
	s.Rejected += o.Rejected
	s.Duplicate += o.Duplicate
	s.Pending += o.Pending
	s.Resolved += o.Resolved
	s.Published += o.Published
}

func (s *Stats) count(st Status) {
	switch st {
	case StatusApplied:
		s.Applied++
	case StatusRejected:
		s.Rejected++
	case StatusDuplicate:
		s.Duplicate++
	case StatusPending:
		s.Pending++
	}
}

// Progress says how many lines of a prepared file are applied once the
// batch commits; it is stored in the batch's transaction.
type Progress struct {
	File  string // prepared file's stem; "" records nothing
	Lines int
}

// Applied returns how many lines of file's prepared file are applied.
func (l *Ledger) Applied(ctx context.Context, file string) (int, error) {
	var n int
	err := l.db.QueryRowContext(ctx, "SELECT applied_lines FROM file_progress WHERE filename = ?", file).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read progress of %s: %w", file, err)
	}
	return n, nil
}

// Apply records and applies evs, in order, in one transaction, together with
// progress p.
func (l *Ledger) Apply(ctx context.Context, evs []event.Prepared, p Progress) (Stats, error) {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return Stats{}, err
	}
	defer tx.Rollback()
	// The progress first: under a trace, its statement carries the trace
	// context to the cdc-producer ahead of every row of the transaction.
	if p.File != "" {
		if err := l.progress(ctx, tx, p); err != nil {
			return Stats{}, fmt.Errorf("record progress: %w", err)
		}
	}
	load, err := l.bulkLoad(ctx)
	if err != nil {
		return Stats{}, err
	}
	s := newState(l.cfg, l.now().UTC())
	if err := s.load(ctx, tx, evs); err != nil {
		return Stats{}, fmt.Errorf("load state: %w", err)
	}
	for _, e := range evs {
		s.apply(e)
	}
	if err := s.write(ctx, tx, load); err != nil {
		return Stats{}, l.refused(fmt.Errorf("write: %w", err))
	}
	if err := tx.Commit(); err != nil {
		return Stats{}, err
	}
	s.stats.Published = len(s.outbox)
	return s.stats, nil
}

// ExpirePending rejects, as orphaned, the pending returns whose delay has
// run out, publishes their ReturnRejected, and returns how many it
// rejected.
func (l *Ledger) ExpirePending(ctx context.Context) (int, error) {
	now := l.now().UTC()
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var outbox []domainEvent
	err = sqldb.Each(ctx, tx, `SELECT p.detail FROM pending_return p JOIN events e
		ON p.source_file = e.source_file AND p.source_line = e.source_line
		WHERE p.pending_until <= ? AND e.status = 'pending' ORDER BY p.pending_until, p.source_file, p.source_line`, func(r *sql.Rows) error {
		var raw []byte
		var e event.Prepared
		if err := r.Scan(&raw); err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("pending return: %w", err)
		}
		ev, _ := newDomainEvent(l.cfg.Shard, e, StatusRejected, orphanReason(e.OrderID, l.cfg.PendingDelay), detail{}, time.Time{}, true)
		outbox = append(outbox, ev)
		return nil
	}, now)
	if err != nil {
		return 0, fmt.Errorf("expire pending returns: %w", err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE events e JOIN pending_return p
		ON p.source_file = e.source_file AND p.source_line = e.source_line
		SET e.status = 'rejected', e.reason = CONCAT('orphaned return: no purchase of order ', p.order_id, ' within ', ?)
		WHERE p.pending_until <= ? AND e.status = 'pending'`, l.cfg.PendingDelay.String(), now)
	if err != nil {
		return 0, fmt.Errorf("expire pending returns: %w", err)
	}
	n, _ := res.RowsAffected()
	if int(n) != len(outbox) {
		return 0, fmt.Errorf("expire pending returns: %d events rows rejected, %d pending returns read", n, len(outbox))
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM pending_return WHERE pending_until <= ?", now); err != nil {
		return 0, fmt.Errorf("expire pending returns: %w", err)
	}
	load, err := l.bulkLoad(ctx)
	if err != nil {
		return 0, err
	}
	if err := writeOutbox(ctx, tx, outbox, load); err != nil {
		return 0, l.refused(fmt.Errorf("expire pending returns: %w", err))
	}
	return int(n), tx.Commit()
}

// progress records in tx how many lines of p's file are applied, with the
// trace context of ctx's span (NULL without one): the cdc-producer reads it
// from the binlog, first of the transaction, and continues the trace.
func (l *Ledger) progress(ctx context.Context, tx *sql.Tx, p Progress) error {
	var tp any
	if s := tracing.TraceParent(ctx); s != "" {
		tp = s
	}
	_, err := tx.ExecContext(ctx, "INSERT INTO "+tracing.ContextTable+" (filename, applied_lines, "+tracing.ContextColumn+`) VALUES (?, ?, ?)
		ON DUPLICATE KEY UPDATE applied_lines = VALUES(applied_lines), `+tracing.ContextColumn+" = VALUES("+tracing.ContextColumn+")",
		p.File, p.Lines, tp)
	return err
}
