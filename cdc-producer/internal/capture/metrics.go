package capture

// The capture's Prometheus metrics and its lag: seconds behind the last
// row event read, binlog bytes past the last checkpoint.

import (
	"context"
	"database/sql"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the capture's Prometheus metrics (the process's registry
// labels them with its component and shard).
type Metrics struct {
	rows       *prometheus.CounterVec
	bytes      prometheus.Counter
	restarts   prometheus.Counter
	lagSeconds prometheus.Gauge
	lastEvent  prometheus.Gauge
	cpPos      prometheus.Gauge
	cpTime     prometheus.Gauge
	cpFile     *prometheus.GaugeVec
	lagBytes   prometheus.Gauge
}

// NewMetrics registers the capture's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	o := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "shopledger", Subsystem: "cdc", Name: name, Help: help}
	}
	m := &Metrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts(o("rows_total",
			"Row changes published, by table and op (c, u, d, r); rate() gives rows/s.")), []string{"table", "op"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts(o("bytes_total", "Bytes of message values published."))),
		restarts: prometheus.NewCounter(prometheus.CounterOpts(o("restarts_total",
			"Times the capture resumed from its checkpoint after an error."))),
		lagSeconds: prometheus.NewGauge(prometheus.GaugeOpts(o("lag_seconds",
			"Now minus the commit time of the last row event read when it was read; 0 once everything the server wrote is checkpointed."))),
		lastEvent: prometheus.NewGauge(prometheus.GaugeOpts(o("last_event_timestamp_seconds",
			"Commit time of the last row event read from the binlog."))),
		cpPos: prometheus.NewGauge(prometheus.GaugeOpts(o("checkpoint_position",
			"Binlog position of the last checkpoint (see shopledger_cdc_checkpoint_file for its file)."))),
		cpTime: prometheus.NewGauge(prometheus.GaugeOpts(o("checkpoint_timestamp_seconds",
			"Commit time of the last checkpointed transaction."))),
		cpFile: prometheus.NewGaugeVec(prometheus.GaugeOpts(o("checkpoint_file",
			"1 for the binlog file of the last checkpoint.")), []string{"file"}),
		lagBytes: prometheus.NewGauge(prometheus.GaugeOpts(o("lag_bytes",
			"Binlog bytes the server has written past the last checkpoint (whole files in between counted by size)."))),
	}
	reg.MustRegister(m.rows, m.bytes, m.restarts, m.lagSeconds, m.lastEvent, m.cpPos, m.cpTime, m.cpFile, m.lagBytes)
	return m
}

// behind records the binlog bytes the server wrote past the checkpoint.
func (m *Metrics) behind(bytes int64) {
	m.lagBytes.Set(float64(bytes))
	if bytes == 0 {
		m.lagSeconds.Set(0) // caught up: the last lag measured is over
	}
}

func (m *Metrics) checkpoint(cp Checkpoint) {
	m.cpPos.Set(float64(cp.Pos))
	m.cpTime.Set(float64(cp.TsMs) / 1000)
	m.cpFile.Reset()
	m.cpFile.WithLabelValues(cp.File).Set(1)
}

// encoded counts a message value of n bytes.
func (m *Metrics) encoded(n int) {
	if m != nil {
		m.bytes.Add(float64(n))
	}
}

// read counts n row changes of table with op.
func (m *Metrics) read(table, op string, n int) {
	if m != nil {
		m.rows.WithLabelValues(table, op).Add(float64(n))
	}
}

// lag records the commit time (Unix seconds) of the last row event read:
// shopledger_cdc_last_event_timestamp_seconds and
// shopledger_cdc_lag_seconds.
func (m *Metrics) lag(ts int64) {
	if m != nil {
		m.lastEvent.Set(float64(ts))
		m.lagSeconds.Set(time.Since(time.Unix(ts, 0)).Seconds())
	}
}

// watchLag sets shopledger_cdc_lag_bytes every few seconds: how far the server's binlog
// has gone past the last checkpoint.
func (c *Capture) watchLag(ctx context.Context) {
	db, err := sql.Open("mysql", dsn(c.cfg))
	if err != nil {
		return
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
		c.mu.Lock()
		cp := c.saved
		c.mu.Unlock()
		if cp.File == "" {
			continue
		}
		rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
		if err != nil {
			continue
		}
		var lag int64
		for rows.Next() {
			var name string
			var size int64
			cols, _ := rows.Columns()
			dest := []any{&name, &size}
			for range len(cols) - 2 {
				dest = append(dest, new(any))
			}
			if rows.Scan(dest...) != nil {
				continue
			}
			switch {
			case name == cp.File:
				lag += size - int64(cp.Pos)
			case name > cp.File: // binlog names sort in order
				lag += size
			}
		}
		rows.Close()
		c.metrics.behind(max(lag, 0))
	}
}
