// Package tracking is the pipeline API: the pipeline_tracking table, the
// stage state machine over it, and the HTTP handlers of SPEC §3.
package tracking

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// ErrNotFound is returned for a file (or file and shard) with no rows.
var ErrNotFound = errors.New("not found")

// ErrIllegal is returned for a transition the state machine refuses, a
// start of a task another owner holds, or a register of a stem another
// producer registered.
var ErrIllegal = errors.New("illegal transition")

// Store reads and writes pipeline_tracking.
type Store struct {
	db *sql.DB
}

// NewStore returns a store on db (pipeline_db).
func NewStore(db *sql.DB) *Store { return &Store{db: db} }

var stageColumn = map[pipeline.Stage]string{
	pipeline.StageEventIngest:   "event_ingest_status",
	pipeline.StageShardSplitter: "shard_splitter_status",
	pipeline.StageShardWorker:   "shard_worker_status",
	pipeline.StageMySQLSender:   "mysql_sender_status",
}

// previous is the stage that must be done before a stage may start.
var previous = map[pipeline.Stage]pipeline.Stage{
	pipeline.StageShardSplitter: pipeline.StageEventIngest,
	pipeline.StageShardWorker:   pipeline.StageShardSplitter,
	pipeline.StageMySQLSender:   pipeline.StageShardWorker,
}

// rule is one transition of the state machine: the statuses it may start
// from, the status it leads to, and whether asking for it again once there
// is a harmless repeat (so a client retrying after a lost answer succeeds).
type rule struct {
	from       []pipeline.Status
	to         pipeline.Status
	idempotent bool
}

var rules = map[pipeline.Transition]rule{
	pipeline.TransitionStart: {from: []pipeline.Status{pipeline.StatusNew}, to: pipeline.StatusStarted},
	pipeline.TransitionDone:  {from: []pipeline.Status{pipeline.StatusStarted}, to: pipeline.StatusDone, idempotent: true},
	pipeline.TransitionFail:  {from: []pipeline.Status{pipeline.StatusNew, pipeline.StatusStarted}, to: pipeline.StatusFailed, idempotent: true},
	pipeline.TransitionRetry: {from: []pipeline.Status{pipeline.StatusFailed}, to: pipeline.StatusNew},
}

// Register creates one row per shard (event_ingest started, others new) and
// returns how many rows it created; rows that exist are left alone. A stem
// another producer registered is refused with ErrIllegal: its file would
// overwrite the other's.
//
// traceparent, when not empty, is the trace the file's stages continue.
func (s *Store) Register(ctx context.Context, filename string, shards []int, producer, traceparent string) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	// The locking read also locks the gap, so two registers of a new stem
	// run one after the other.
	var other sql.NullString
	err = tx.QueryRowContext(ctx, "SELECT MIN(producer) FROM pipeline_tracking WHERE filename = ? AND producer <> ? FOR UPDATE",
		filename, producer).Scan(&other)
	if err != nil {
		return 0, fmt.Errorf("register %s: %w", filename, err)
	}
	if other.Valid {
		return 0, fmt.Errorf("%w: file %s is already registered by producer %q, not %q: two writers used the same second; "+
			"its events file must not be overwritten, register the next second instead", ErrIllegal, filename, other.String, producer)
	}
	ins := sqldb.Bulk{Head: "INSERT INTO pipeline_tracking (filename, shard, event_ingest_status, producer, trace_parent) VALUES ",
		Tail: " ON DUPLICATE KEY UPDATE id = id", Cols: 5}
	for _, sh := range shards {
		ins.Add(filename, sh, pipeline.StatusStarted, producer, nullIfEmpty(traceparent))
	}
	n, err := ins.ExecCount(ctx, tx)
	if err != nil {
		return 0, fmt.Errorf("register %s: %w", filename, err)
	}
	return int(n), tx.Commit()
}

// IngestDone marks event_ingest done on every shard row of filename and
// returns how many rows changed. Rows already done stay done; a failed row
// is refused with ErrIllegal. traceparent, when not empty, becomes the
// trace the next stage continues.
func (s *Store) IngestDone(ctx context.Context, filename, traceparent string) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	n := 0
	var bad []string
	err = sqldb.Each(ctx, tx, "SELECT shard, event_ingest_status FROM pipeline_tracking WHERE filename = ? FOR UPDATE", func(r *sql.Rows) error {
		var shard int
		var st pipeline.Status
		if err := r.Scan(&shard, &st); err != nil {
			return err
		}
		n++
		if st != pipeline.StatusStarted && st != pipeline.StatusDone {
			bad = append(bad, fmt.Sprintf("shard %d is %s", shard, st))
		}
		return nil
	}, filename)
	if err != nil {
		return 0, fmt.Errorf("ingest done %s: %w", filename, err)
	}
	if n == 0 {
		return 0, fmt.Errorf("file %s: %w", filename, ErrNotFound)
	}
	if len(bad) > 0 {
		return 0, fmt.Errorf("%w: event-ingest cannot be done: %s", ErrIllegal, strings.Join(bad, ", "))
	}
	res, err := tx.ExecContext(ctx, "UPDATE pipeline_tracking SET event_ingest_status = 'done', trace_parent = COALESCE(?, trace_parent) "+
		"WHERE filename = ? AND event_ingest_status = 'started'", nullIfEmpty(traceparent), filename)
	if err != nil {
		return 0, err
	}
	changed, _ := res.RowsAffected()
	return int(changed), tx.Commit()
}

// Transition applies transition to stage of (filename, shard) on behalf of
// owner ("" for an anonymous client) and returns the new status. A done
// with a traceparent makes it the trace the next stage continues.
//
// The change is one conditional UPDATE, so of several concurrent callers
// exactly one moves a row out of a given status: two workers never both
// start the same task. A start by the owner that already started the task
// succeeds again (its first answer may have been lost); a done or fail of
// a task another owner started is refused.
func (s *Store) Transition(ctx context.Context, filename string, shard int, stage pipeline.Stage, transition pipeline.Transition, owner,
	traceparent string) (pipeline.Status, error) {
	col, r := stageColumn[stage], rules[transition]
	set := col + " = ?"
	args := []any{r.to}
	switch transition {
	case pipeline.TransitionStart:
		set += ", owner = NULLIF(?, ''), started_at = CURRENT_TIMESTAMP(6)"
		args = append(args, owner)
	case pipeline.TransitionRetry:
		set += ", owner = NULL, started_at = NULL"
	case pipeline.TransitionDone:
		set += ", trace_parent = COALESCE(?, trace_parent)"
		args = append(args, nullIfEmpty(traceparent))
	}
	q := "UPDATE pipeline_tracking SET " + set + " WHERE filename = ? AND shard = ? AND " + col + " IN (" + placeholders(len(r.from)) + ")"
	args = append(args, filename, shard)
	for _, f := range r.from {
		args = append(args, f)
	}
	prev, hasPrev := previous[stage]
	if transition == pipeline.TransitionStart && hasPrev {
		q += " AND " + stageColumn[prev] + " = 'done'"
	}
	if transition == pipeline.TransitionDone || transition == pipeline.TransitionFail {
		// Only the owner, or an anonymous client (an operator), may end a
		// task another owner started.
		q += " AND (? = '' OR owner IS NULL OR owner = ? OR " + col + " <> 'started')"
		args = append(args, owner, owner)
	}
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return "", fmt.Errorf("%s %s %s/%d: %w", stage, transition, filename, shard, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return r.to, nil
	}
	return s.refused(ctx, filename, shard, stage, transition, owner)
}

// refused says why a transition changed nothing, or accepts a harmless
// repeat.
func (s *Store) refused(ctx context.Context, filename string, shard int, stage pipeline.Stage, transition pipeline.Transition, owner string) (pipeline.Status, error) {
	col, r := stageColumn[stage], rules[transition]
	prev, hasPrev := previous[stage]
	prevCol := "'done'"
	if hasPrev {
		prevCol = stageColumn[prev]
	}
	var cur, prevStatus pipeline.Status
	var holder sql.NullString
	err := s.db.QueryRowContext(ctx, "SELECT "+col+", "+prevCol+", owner FROM pipeline_tracking WHERE filename = ? AND shard = ?",
		filename, shard).Scan(&cur, &prevStatus, &holder)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("file %s shard %d: %w", filename, shard, ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	switch {
	case transition == pipeline.TransitionStart && cur == pipeline.StatusStarted && owner != "" && holder.String == owner:
		return cur, nil // the owner's retry of its own start
	case cur == r.to && r.idempotent:
		return cur, nil
	case cur == pipeline.StatusStarted && holder.Valid && owner != "" && holder.String != owner:
		return "", fmt.Errorf("%w: %s of %s shard %d was started by %q, not %q", ErrIllegal, stage, filename, shard, holder.String, owner)
	case slices.Contains(r.from, cur) && transition == pipeline.TransitionStart && prevStatus != pipeline.StatusDone:
		return "", fmt.Errorf("%w: cannot start %s: %s is %s, not done", ErrIllegal, stage, prev, prevStatus)
	}
	from := make([]string, len(r.from))
	for i, f := range r.from {
		from[i] = string(f)
	}
	return "", fmt.Errorf("%w: %s of %s is %s; %s needs %s", ErrIllegal, stage, filename, cur, transition, strings.Join(from, " or "))
}

// Queue lists up to limit (file, shard) items ready for stage, oldest first,
// or, with startedBy set, the items of stage that owner started and has not
// finished. shard < 0 means every shard.
func (s *Store) Queue(ctx context.Context, stage pipeline.Stage, shard int, startedBy string, limit, offset int) ([]pipeline.QueueItem, error) {
	q := "SELECT filename, shard, created_at, trace_parent FROM pipeline_tracking WHERE " + stageColumn[stage] + " = 'new' AND " +
		stageColumn[previous[stage]] + " = 'done'"
	args := []any{}
	if startedBy != "" {
		q = "SELECT filename, shard, created_at, trace_parent FROM pipeline_tracking WHERE " + stageColumn[stage] + " = 'started' AND owner = ?"
		args = append(args, startedBy)
	}
	if shard >= 0 {
		q += " AND shard = ?"
		args = append(args, shard)
	}
	q += " ORDER BY created_at, filename, shard LIMIT ? OFFSET ?"
	args = append(args, limit, offset)
	items := []pipeline.QueueItem{}
	err := sqldb.Each(ctx, s.db, q, func(r *sql.Rows) error {
		var it pipeline.QueueItem
		var tp sql.NullString
		err := r.Scan(&it.Filename, &it.Shard, &it.CreatedAt, &tp)
		it.TraceParent = tp.String
		items = append(items, it)
		return err
	}, args...)
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", stage, err)
	}
	return items, nil
}

// File returns the producer and every shard row of filename, or
// ErrNotFound.
func (s *Store) File(ctx context.Context, filename string) (pipeline.FileResponse, error) {
	out := pipeline.FileResponse{Filename: filename}
	err := sqldb.Each(ctx, s.db, `SELECT shard, event_ingest_status, shard_splitter_status, shard_worker_status,
		mysql_sender_status, updated_at, owner, started_at, producer, trace_parent FROM pipeline_tracking WHERE filename = ? ORDER BY shard`, func(r *sql.Rows) error {
		var st pipeline.ShardStatus
		var owner, tp sql.NullString
		var started sql.NullTime
		if err := r.Scan(&st.Shard, &st.EventIngestStatus, &st.ShardSplitterStatus, &st.ShardWorkerStatus, &st.MySQLSenderStatus,
			&st.UpdatedAt, &owner, &started, &out.Producer, &tp); err != nil {
			return err
		}
		st.Owner, st.TraceParent = owner.String, tp.String
		if started.Valid {
			st.StartedAt = &started.Time
		}
		out.Shards = append(out.Shards, st)
		return nil
	}, filename)
	if err != nil {
		return out, fmt.Errorf("file %s: %w", filename, err)
	}
	if len(out.Shards) == 0 {
		return out, fmt.Errorf("file %s: %w", filename, ErrNotFound)
	}
	return out, nil
}

// Summary counts rows per stage and status, and per shard.
func (s *Store) Summary(ctx context.Context) (pipeline.Summary, error) {
	out := pipeline.Summary{ByStage: map[pipeline.Stage]pipeline.StageCounts{}, ByShard: []pipeline.ShardCounts{}}
	for _, stage := range pipeline.Stages {
		col := stageColumn[stage]
		var c pipeline.StageCounts
		err := sqldb.Each(ctx, s.db, "SELECT "+col+", COUNT(*) FROM pipeline_tracking GROUP BY "+col, func(r *sql.Rows) error {
			var st pipeline.Status
			var n int
			if err := r.Scan(&st, &n); err != nil {
				return err
			}
			switch st {
			case pipeline.StatusNew:
				c.New = n
			case pipeline.StatusStarted:
				c.Started = n
			case pipeline.StatusDone:
				c.Done = n
			case pipeline.StatusFailed:
				c.Failed = n
			}
			return nil
		})
		if err != nil {
			return out, fmt.Errorf("summary: %w", err)
		}
		out.ByStage[stage] = c
	}
	err := sqldb.Each(ctx, s.db, `SELECT shard, COUNT(*),
		SUM(mysql_sender_status = 'done'),
		SUM(event_ingest_status = 'failed' OR shard_splitter_status = 'failed' OR shard_worker_status = 'failed' OR mysql_sender_status = 'failed')
		FROM pipeline_tracking GROUP BY shard ORDER BY shard`, func(r *sql.Rows) error {
		var c pipeline.ShardCounts
		if err := r.Scan(&c.Shard, &c.Total, &c.Done, &c.Failed); err != nil {
			return err
		}
		out.Total += c.Total
		out.ByShard = append(out.ByShard, c)
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("summary: %w", err)
	}
	return out, nil
}

// Ping checks the database.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
