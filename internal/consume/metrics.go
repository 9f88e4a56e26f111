package consume

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	changes *prometheus.CounterVec
	dead    *prometheus.CounterVec
	lag     *prometheus.GaugeVec
	batch   prometheus.Histogram
	delay   prometheus.Histogram
	retries prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "shopledger", Subsystem: "consumer", Name: name, Help: help}
	}
	m := &metrics{
		changes: prometheus.NewCounterVec(prometheus.CounterOpts(opts("changes_total",
			"Change messages handled, by result: applied, duplicate (skipped), superseded (of an older epoch than the shard's snapshot, skipped), "+
				"dead_letter (sent to the dead-letter topic), tombstone. rate() of applied is the apply rate.")),
			[]string{"result"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts(opts("dead_letters_total",
			"Changes sent to the dead-letter topic, by the topic they came from.")), []string{"topic"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("lag_messages",
			"Messages behind the partition's high watermark after the last batch of it this member applied.")), []string{"topic", "partition"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "shopledger", Subsystem: "consumer", Name: "batch_duration_seconds",
			Help: "Time to apply one batch in one transaction.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "shopledger", Subsystem: "consumer", Name: "delay_seconds",
			Help: "From a change's publication to Kafka to its batch being applied.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)}),
		retries: prometheus.NewCounter(prometheus.CounterOpts(opts("retries_total", "Batches retried after a failed apply."))),
	}
	for _, r := range []string{"applied", "duplicate", "superseded", "dead_letter", "tombstone"} {
		m.changes.WithLabelValues(r) // present from the start, at 0
	}
	reg.MustRegister(m.changes, m.dead, m.lag, m.batch, m.delay, m.retries)
	return m
}

func (m *metrics) observe(b interface{ lastPerPartition() map[tp]msgInfo }, res Result, took time.Duration) {
	m.batch.Observe(took.Seconds())
	m.changes.WithLabelValues("applied").Add(float64(res.Applied))
	m.changes.WithLabelValues("duplicate").Add(float64(res.Duplicates))
	m.changes.WithLabelValues("superseded").Add(float64(res.Superseded))
	m.changes.WithLabelValues("dead_letter").Add(float64(res.Dead))
	m.changes.WithLabelValues("tombstone").Add(float64(res.Tombstones))
	now := time.Now()
	for p, last := range b.lastPerPartition() {
		m.lag.WithLabelValues(p.topic, strconv.Itoa(p.partition)).Set(float64(last.highWater - last.offset - 1))
		for _, t := range last.times {
			m.delay.Observe(now.Sub(t).Seconds())
		}
	}
}

type tp struct {
	topic     string
	partition int
}

type msgInfo struct {
	offset, highWater int64
	times             []time.Time
}

func (b *Batch[C]) lastPerPartition() map[tp]msgInfo {
	out := map[tp]msgInfo{}
	for _, m := range b.msgs {
		k := tp{m.Topic, m.Partition}
		info := out[k]
		info.offset, info.highWater = m.Offset, m.HighWaterMark
		info.times = append(info.times, m.Time)
		out[k] = info
	}
	return out
}
