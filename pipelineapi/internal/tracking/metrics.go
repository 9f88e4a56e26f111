package tracking

import (
	"context"
	"database/sql"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/internal/pipeline"
)

// Backlog is what pipeline_tracking holds now, per stage: the rows in
// each status, and for the task stages the rows ready (the previous stage
// done, this one new) with the oldest of them, and the oldest row started
// and not finished. Operators watch it: a stage that stops moving leaves
// its ready and started rows growing old.
type Backlog struct {
	Rows          map[pipeline.Stage]map[pipeline.Status]int
	Ready         map[pipeline.Stage]int
	OldestReady   map[pipeline.Stage]time.Time // when the oldest ready row became ready
	OldestStarted map[pipeline.Stage]time.Time // when the oldest started row was started
}

// Backlog reads the backlog in one pass over pipeline_tracking.
func (s *Store) Backlog(ctx context.Context) (Backlog, error) {
	b := Backlog{Rows: map[pipeline.Stage]map[pipeline.Status]int{}, Ready: map[pipeline.Stage]int{},
		OldestReady: map[pipeline.Stage]time.Time{}, OldestStarted: map[pipeline.Stage]time.Time{}}
	for _, st := range pipeline.Stages {
		b.Rows[st] = map[pipeline.Status]int{}
	}
	oldest := func(m map[pipeline.Stage]time.Time, st pipeline.Stage, t time.Time) {
		if old, ok := m[st]; !ok || t.Before(old) {
			m[st] = t
		}
	}
	// A ready row has not changed since its previous stage was done, and a
	// started row's started_at is its current stage's start (an ingest
	// not done yet: its registration).
	rows, err := s.db.QueryContext(ctx, `SELECT event_ingest_status, shard_splitter_status, shard_worker_status, mysql_sender_status,
		COUNT(*), MIN(created_at), MIN(updated_at), MIN(started_at) FROM pipeline_tracking GROUP BY 1, 2, 3, 4`)
	if err != nil {
		return b, err
	}
	defer rows.Close()
	for rows.Next() {
		var st [4]pipeline.Status
		var n int
		var created, updated time.Time
		var started sql.NullTime
		if err := rows.Scan(&st[0], &st[1], &st[2], &st[3], &n, &created, &updated, &started); err != nil {
			return b, err
		}
		for i, stage := range pipeline.Stages {
			b.Rows[stage][st[i]] += n
			switch {
			case i > 0 && st[i] == pipeline.StatusNew && st[i-1] == pipeline.StatusDone:
				b.Ready[stage] += n
				oldest(b.OldestReady, stage, updated)
			case st[i] == pipeline.StatusStarted && i == 0:
				oldest(b.OldestStarted, stage, created)
			case st[i] == pipeline.StatusStarted && started.Valid:
				oldest(b.OldestStarted, stage, started.Time)
			}
		}
	}
	return b, rows.Err()
}

// backlog exports the Backlog at every scrape.
type backlog struct {
	store                                   *Store
	rows, ready, oldestReady, oldestStarted *prometheus.Desc
}

func newBacklog(s *Store) *backlog {
	return &backlog{store: s,
		rows: prometheus.NewDesc("shopledger_pipeline_rows", "Rows of pipeline_tracking (one per file and shard) by stage and status.",
			[]string{"stage", "status"}, nil),
		ready: prometheus.NewDesc("shopledger_pipeline_ready_rows", "Rows ready for a stage (previous stage done, this one new): its queue.",
			[]string{"stage"}, nil),
		oldestReady: prometheus.NewDesc("shopledger_pipeline_oldest_ready_timestamp_seconds",
			"When the oldest row ready for a stage became ready, the scrape's time when none is: time() minus it is how long the queue's head has waited.",
			[]string{"stage"}, nil),
		oldestStarted: prometheus.NewDesc("shopledger_pipeline_oldest_started_timestamp_seconds",
			"When the oldest row started in a stage and not finished was started, the scrape's time when none is.",
			[]string{"stage"}, nil),
	}
}

func (b *backlog) Describe(ch chan<- *prometheus.Desc) {
	ch <- b.rows
	ch <- b.ready
	ch <- b.oldestReady
	ch <- b.oldestStarted
}

func (b *backlog) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	now := time.Now()
	bl, err := b.store.Backlog(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(b.rows, err)
		return
	}
	for _, stage := range pipeline.Stages {
		for _, status := range pipeline.Statuses {
			ch <- prometheus.MustNewConstMetric(b.rows, prometheus.GaugeValue, float64(bl.Rows[stage][status]), string(stage), string(status))
		}
		if stage != pipeline.StageEventIngest {
			ch <- prometheus.MustNewConstMetric(b.ready, prometheus.GaugeValue, float64(bl.Ready[stage]), string(stage))
		}
		// With nothing waiting, the scrape's own time: the wait is 0 and
		// the series never disappears.
		if stage != pipeline.StageEventIngest {
			ch <- prometheus.MustNewConstMetric(b.oldestReady, prometheus.GaugeValue, seconds(bl.OldestReady[stage], now), string(stage))
		}
		ch <- prometheus.MustNewConstMetric(b.oldestStarted, prometheus.GaugeValue, seconds(bl.OldestStarted[stage], now), string(stage))
	}
}

// seconds is t as Unix seconds, or now's when t is zero.
func seconds(t, now time.Time) float64 {
	if t.IsZero() {
		t = now
	}
	return float64(t.UnixMilli()) / 1000
}
