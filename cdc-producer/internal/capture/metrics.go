package capture

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the capture's Prometheus metrics.
type Metrics struct {
	rows       *prometheus.CounterVec
	bytes      prometheus.Counter
	restarts   prometheus.Counter
	lagSeconds prometheus.Gauge
	cpPos      prometheus.Gauge
	cpTime     prometheus.Gauge
	cpFile     *prometheus.GaugeVec
	lagBytes   prometheus.Gauge
}

// NewMetrics registers the metrics of shard's capture on reg.
func NewMetrics(reg prometheus.Registerer, shard int) *Metrics {
	l := prometheus.Labels{"shard": fmt.Sprint(shard)}
	m := &Metrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cdc_rows_total",
			Help: "Row changes published, by table and op (c, u, d, r); rate() gives rows/s.", ConstLabels: l}, []string{"table", "op"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "cdc_bytes_total",
			Help: "Bytes of message values published.", ConstLabels: l}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{Name: "cdc_restarts_total",
			Help: "Times the capture resumed from its checkpoint after an error.", ConstLabels: l}),
		lagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cdc_lag_seconds",
			Help: "Now minus the commit time of the last row event read.", ConstLabels: l}),
		cpPos: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cdc_checkpoint_position",
			Help: "Binlog position of the last checkpoint (see cdc_checkpoint_file for its file).", ConstLabels: l}),
		cpTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cdc_checkpoint_timestamp_seconds",
			Help: "Commit time of the last checkpointed transaction.", ConstLabels: l}),
		cpFile: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cdc_checkpoint_file",
			Help: "1 for the binlog file of the last checkpoint.", ConstLabels: l}, []string{"file"}),
		lagBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cdc_lag_bytes",
			Help: "Binlog bytes the server has written past the last checkpoint (whole files in between counted by size).", ConstLabels: l}),
	}
	reg.MustRegister(m.rows, m.bytes, m.restarts, m.lagSeconds, m.cpPos, m.cpTime, m.cpFile, m.lagBytes)
	return m
}

func (m *Metrics) checkpoint(cp Checkpoint) {
	m.cpPos.Set(float64(cp.Pos))
	m.cpTime.Set(float64(cp.TsMs) / 1000)
	m.cpFile.Reset()
	m.cpFile.WithLabelValues(cp.File).Set(1)
}
