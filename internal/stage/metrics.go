package stage

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/internal/pipeline"
)

// Metrics are what every stage counts under the same names, so that a
// dashboard shows the stages side by side: files finished and lines
// handled per stage (rate() is the stage's throughput) and the time a file
// takes in it. A worker's files are its shard's part of a file.
type Metrics struct {
	files    *prometheus.CounterVec
	lines    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the stage metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		files: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shopledger", Subsystem: "stage", Name: "files_total",
			Help: "Files a stage finished, by stage and result (done, failed)."}, []string{"stage", "result"}),
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shopledger", Subsystem: "stage", Name: "lines_total",
			Help: "Event lines a stage handled, by stage; rate() is its throughput in events/s."}, []string{"stage"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "shopledger", Subsystem: "stage", Name: "file_duration_seconds",
			Help: "Time a stage took for one file, from its claim to its done.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)},
			[]string{"stage"}),
	}
	reg.MustRegister(m.files, m.lines, m.duration)
	return m
}

// Lines counts n lines handled by stage.
func (m *Metrics) Lines(stage pipeline.Stage, n int) {
	m.lines.WithLabelValues(string(stage)).Add(float64(n))
}

// File records a file stage finished, failed or not, and its time.
func (m *Metrics) File(stage pipeline.Stage, failed bool, took time.Duration) {
	result := pipeline.StatusDone
	if failed {
		result = pipeline.StatusFailed
	}
	m.files.WithLabelValues(string(stage), string(result)).Inc()
	m.duration.WithLabelValues(string(stage)).Observe(took.Seconds())
}
