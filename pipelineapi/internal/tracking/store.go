// Package tracking is the pipeline API: the pipeline_tracking table, the
// stage state machine over it, and the HTTP handlers of SPEC §3.
package tracking

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/shopledger/shopledger/internal/pipeline"
)

// ErrNotFound is returned for a file (or file and shard) with no rows.
var ErrNotFound = errors.New("not found")

// ErrIllegal is returned for a transition the state machine refuses.
var ErrIllegal = errors.New("illegal transition")

// Store reads and writes pipeline_tracking.
type Store struct {
	db *sql.DB
}

// NewStore returns a store on db (pipeline_db).
func NewStore(db *sql.DB) *Store { return &Store{db: db} }

var stageColumn = map[string]string{
	pipeline.StageEventIngest:   "event_ingest_status",
	pipeline.StageShardSplitter: "shard_splitter_status",
	pipeline.StageShardWorker:   "shard_worker_status",
	pipeline.StageMySQLSender:   "mysql_sender_status",
}

// previous is the stage that must be done before a stage may start.
var previous = map[string]string{
	pipeline.StageShardSplitter: pipeline.StageEventIngest,
	pipeline.StageShardWorker:   pipeline.StageShardSplitter,
	pipeline.StageMySQLSender:   pipeline.StageShardWorker,
}

// rule is one transition of the state machine: the statuses it may start
// from, the status it leads to, and whether asking for it again once there
// is a harmless repeat (so a client retrying after a lost answer succeeds).
type rule struct {
	from       []string
	to         string
	idempotent bool
}

var rules = map[string]rule{
	pipeline.TransitionStart: {from: []string{pipeline.StatusNew}, to: pipeline.StatusStarted},
	pipeline.TransitionDone:  {from: []string{pipeline.StatusStarted}, to: pipeline.StatusDone, idempotent: true},
	pipeline.TransitionFail:  {from: []string{pipeline.StatusNew, pipeline.StatusStarted}, to: pipeline.StatusFailed, idempotent: true},
	pipeline.TransitionRetry: {from: []string{pipeline.StatusFailed}, to: pipeline.StatusNew},
}

// Register creates one row per shard (event_ingest started, others new) and
// returns how many rows it created; rows that exist are left alone.
func (s *Store) Register(ctx context.Context, filename string, shards []int) (int, error) {
	var q strings.Builder
	q.WriteString("INSERT IGNORE INTO pipeline_tracking (filename, shard, event_ingest_status) VALUES ")
	args := make([]any, 0, 2*len(shards))
	for i, sh := range shards {
		if i > 0 {
			q.WriteString(",")
		}
		q.WriteString("(?, ?, 'started')")
		args = append(args, filename, sh)
	}
	res, err := s.db.ExecContext(ctx, q.String(), args...)
	if err != nil {
		return 0, fmt.Errorf("register %s: %w", filename, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// IngestDone marks event_ingest done on every shard row of filename and
// returns how many rows changed. Rows already done stay done; a failed row
// is refused with ErrIllegal.
func (s *Store) IngestDone(ctx context.Context, filename string) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "SELECT shard, event_ingest_status FROM pipeline_tracking WHERE filename = ? FOR UPDATE", filename)
	if err != nil {
		return 0, fmt.Errorf("ingest done %s: %w", filename, err)
	}
	n := 0
	var bad []string
	for rows.Next() {
		var shard int
		var st string
		if err := rows.Scan(&shard, &st); err != nil {
			rows.Close()
			return 0, err
		}
		n++
		if st != pipeline.StatusStarted && st != pipeline.StatusDone {
			bad = append(bad, fmt.Sprintf("shard %d is %s", shard, st))
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("file %s: %w", filename, ErrNotFound)
	}
	if len(bad) > 0 {
		return 0, fmt.Errorf("%w: event-ingest cannot be done: %s", ErrIllegal, strings.Join(bad, ", "))
	}
	res, err := tx.ExecContext(ctx, "UPDATE pipeline_tracking SET event_ingest_status = 'done' WHERE filename = ? AND event_ingest_status = 'started'", filename)
	if err != nil {
		return 0, err
	}
	changed, _ := res.RowsAffected()
	return int(changed), tx.Commit()
}

// Transition applies transition to stage of (filename, shard) and returns the
// new status. The change is one conditional UPDATE, so of several concurrent
// callers exactly one moves a row out of a given status: two workers never
// both start the same task.
func (s *Store) Transition(ctx context.Context, filename string, shard int, stage, transition string) (string, error) {
	col, r := stageColumn[stage], rules[transition]
	q := "UPDATE pipeline_tracking SET " + col + " = ? WHERE filename = ? AND shard = ? AND " + col + " IN (" + placeholders(len(r.from)) + ")"
	args := []any{r.to, filename, shard}
	for _, f := range r.from {
		args = append(args, f)
	}
	prev := previous[stage]
	if transition == pipeline.TransitionStart && prev != "" {
		q += " AND " + stageColumn[prev] + " = 'done'"
	}
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return "", fmt.Errorf("%s %s %s/%d: %w", stage, transition, filename, shard, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return r.to, nil
	}
	// Nothing changed: say why.
	var cur, prevStatus string
	prevCol := "'done'"
	if prev != "" {
		prevCol = stageColumn[prev]
	}
	err = s.db.QueryRowContext(ctx, "SELECT "+col+", "+prevCol+" FROM pipeline_tracking WHERE filename = ? AND shard = ?", filename, shard).Scan(&cur, &prevStatus)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("file %s shard %d: %w", filename, shard, ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	if cur == r.to && r.idempotent {
		return cur, nil
	}
	if contains(r.from, cur) && transition == pipeline.TransitionStart && prevStatus != pipeline.StatusDone {
		return "", fmt.Errorf("%w: cannot start %s: %s is %s, not done", ErrIllegal, stage, prev, prevStatus)
	}
	return "", fmt.Errorf("%w: %s of %s is %s; %s needs %s", ErrIllegal, stage, filename, cur, transition, strings.Join(r.from, " or "))
}

// Queue lists up to limit (file, shard) items ready for stage, oldest first.
// shard < 0 means every shard.
func (s *Store) Queue(ctx context.Context, stage string, shard, limit, offset int) ([]pipeline.QueueItem, error) {
	q := "SELECT filename, shard, created_at FROM pipeline_tracking WHERE " + stageColumn[stage] + " = 'new' AND " +
		stageColumn[previous[stage]] + " = 'done'"
	args := []any{}
	if shard >= 0 {
		q += " AND shard = ?"
		args = append(args, shard)
	}
	q += " ORDER BY created_at, filename, shard LIMIT ? OFFSET ?"
	args = append(args, limit, offset)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", stage, err)
	}
	defer rows.Close()
	items := []pipeline.QueueItem{}
	for rows.Next() {
		var it pipeline.QueueItem
		if err := rows.Scan(&it.Filename, &it.Shard, &it.CreatedAt); err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, rows.Err()
}

// File returns every shard row of filename, or ErrNotFound.
func (s *Store) File(ctx context.Context, filename string) ([]pipeline.ShardStatus, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT shard, event_ingest_status, shard_splitter_status, shard_worker_status,
		mysql_sender_status, updated_at FROM pipeline_tracking WHERE filename = ? ORDER BY shard`, filename)
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", filename, err)
	}
	defer rows.Close()
	var out []pipeline.ShardStatus
	for rows.Next() {
		var st pipeline.ShardStatus
		if err := rows.Scan(&st.Shard, &st.EventIngestStatus, &st.ShardSplitterStatus, &st.ShardWorkerStatus, &st.MySQLSenderStatus, &st.UpdatedAt); err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("file %s: %w", filename, ErrNotFound)
	}
	return out, nil
}

// Summary counts rows per stage and status, and per shard.
func (s *Store) Summary(ctx context.Context) (pipeline.Summary, error) {
	out := pipeline.Summary{ByStage: map[string]pipeline.StageCounts{}, ByShard: []pipeline.ShardCounts{}}
	for _, stage := range pipeline.Stages {
		col := stageColumn[stage]
		rows, err := s.db.QueryContext(ctx, "SELECT "+col+", COUNT(*) FROM pipeline_tracking GROUP BY "+col)
		if err != nil {
			return out, fmt.Errorf("summary: %w", err)
		}
		var c pipeline.StageCounts
		for rows.Next() {
			var st string
			var n int
			if err := rows.Scan(&st, &n); err != nil {
				rows.Close()
				return out, err
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
		}
		rows.Close()
		out.ByStage[stage] = c
	}
	rows, err := s.db.QueryContext(ctx, `SELECT shard, COUNT(*),
		SUM(mysql_sender_status = 'done'),
		SUM(event_ingest_status = 'failed' OR shard_splitter_status = 'failed' OR shard_worker_status = 'failed' OR mysql_sender_status = 'failed')
		FROM pipeline_tracking GROUP BY shard ORDER BY shard`)
	if err != nil {
		return out, fmt.Errorf("summary: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c pipeline.ShardCounts
		if err := rows.Scan(&c.Shard, &c.Total, &c.Done, &c.Failed); err != nil {
			return out, err
		}
		out.Total += c.Total
		out.ByShard = append(out.ByShard, c)
	}
	return out, rows.Err()
}

// Ping checks the database.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
