// Package consume runs a Kafka consumer-group member that hands batches of
// change events to a handler and commits their offsets only after the
// handler's database transaction committed: delivery is at least once, and
// the handler makes redelivery harmless by recording what it applied in that
// same transaction.
package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/config"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// Config is the [kafka] section of a consumer's configuration.
type Config struct {
	Brokers []string `mapstructure:"brokers"`
	// Group is the consumer group; instances in one group share the
	// partitions.
	Group  string   `mapstructure:"group"`
	Topics []string `mapstructure:"topics"`
	// BatchSize is the most changes applied in one transaction; BatchWait is
	// how long a batch waits to fill once its first change arrived.
	BatchSize int           `mapstructure:"batch_size"`
	BatchWait time.Duration `mapstructure:"batch_wait"`
	// SessionTimeout is how long the group waits for a silent member (one
	// killed, say) before giving its partitions to the others.
	SessionTimeout time.Duration `mapstructure:"session_timeout"`
}

// Check adds the section's problems to ch.
func (c *Config) Check(ch *config.Checks) {
	ch.Check(len(c.Brokers) > 0, "kafka.brokers", "must list at least one broker")
	ch.Check(c.Group != "", "kafka.group", "must be set")
	ch.Check(len(c.Topics) > 0, "kafka.topics", "must list at least one topic")
	ch.Check(c.BatchSize >= 1, "kafka.batch_size", "must be at least 1, got %d", c.BatchSize)
	ch.Check(c.BatchWait > 0, "kafka.batch_wait", "must be positive, got %s", c.BatchWait)
	ch.Check(c.SessionTimeout >= time.Second, "kafka.session_timeout", "must be at least 1s, got %s", c.SessionTimeout)
}

// Result is what a handler did with a batch.
type Result struct {
	Applied    int // changes that changed the state
	Duplicates int // changes already applied earlier, skipped
	Invalid    int // changes that cannot be applied, logged and skipped
}

// Stages handle batches in two steps. Prepare (decoding, say) runs ahead,
// on the next batch while Apply writes the previous one. Apply writes a
// prepared batch in one database transaction; an error means nothing of it
// was applied, and it is retried.
type Stages struct {
	Prepare func(msgs []kafka.Message) any
	Apply   func(ctx context.Context, prepared any) (Result, error)
}

// Consumer is one member of the group.
type Consumer struct {
	cfg     Config
	stages  Stages
	log     *slog.Logger
	metrics *metrics
	reader  *kafka.Reader

	mu      sync.Mutex
	lastErr error // of the last fetch or apply; nil when healthy
}

// New returns a consumer; Run starts it.
func New(cfg Config, st Stages, reg prometheus.Registerer, log *slog.Logger) *Consumer {
	c := &Consumer{cfg: cfg, stages: st, log: log, metrics: newMetrics(reg)}
	c.reader = kafka.NewReader(kafka.ReaderConfig{
		Brokers:       cfg.Brokers,
		GroupID:       cfg.Group,
		GroupTopics:   cfg.Topics,
		MinBytes:      1,
		MaxBytes:      16 << 20,
		MaxWait:       250 * time.Millisecond,
		QueueCapacity: 4 * cfg.BatchSize,
		StartOffset:   kafka.FirstOffset,
		// Topics created after the start (by a cdc-producer starting later)
		// and added partitions join the assignment.
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 5 * time.Second,
		CommitInterval:         0, // synchronous: CommitMessages returns once the broker has them
		HeartbeatInterval:      cfg.SessionTimeout / 4,
		SessionTimeout:         cfg.SessionTimeout,
		RebalanceTimeout:       cfg.SessionTimeout,
		Logger: kafka.LoggerFunc(func(msg string, args ...any) {
			log.Debug("kafka: " + fmt.Sprintf(msg, args...))
		}),
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			log.Warn("kafka: " + fmt.Sprintf(msg, args...))
		}),
	})
	return c
}

// batch is a fetched batch and its prepared form.
type batch struct {
	msgs     []kafka.Message
	prepared any
}

// Run consumes until ctx ends. Errors of the broker or of the handler are
// logged and retried, never skipped: a batch is committed only once it was
// applied. The next batch is fetched and prepared while one is applied.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.reader.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan batch, 1)
	go func() {
		defer close(next)
		fails := 0
		for ctx.Err() == nil {
			msgs, err := c.fetch(ctx)
			if err != nil {
				if ctx.Err() == nil {
					c.fail("fetch", err, &fails)
					sleep(ctx, backoff(fails))
				}
				continue
			}
			fails = 0
			select {
			case next <- batch{msgs, c.stages.Prepare(msgs)}:
			case <-ctx.Done():
			}
		}
	}()
	fails := 0
	for b := range next {
		start := time.Now()
		res, err := c.apply(ctx, b, &fails)
		if err != nil {
			break // ctx ended
		}
		c.metrics.batch.Observe(time.Since(start).Seconds())
		c.metrics.changes.WithLabelValues("applied").Add(float64(res.Applied))
		c.metrics.changes.WithLabelValues("duplicate").Add(float64(res.Duplicates))
		c.metrics.changes.WithLabelValues("invalid").Add(float64(res.Invalid))
		now := time.Now()
		type topicPartition struct {
			topic string
			id    int
		}
		last := map[topicPartition]kafka.Message{}
		for _, m := range b.msgs {
			c.metrics.delay.Observe(now.Sub(m.Time).Seconds())
			last[topicPartition{m.Topic, m.Partition}] = m
		}
		for p, m := range last {
			c.metrics.lag.WithLabelValues(p.topic, strconv.Itoa(p.id)).Set(float64(m.HighWaterMark - m.Offset - 1))
		}
		// A failed commit (the partition moved to another member in a
		// rebalance, say) only means redelivery, which the handler skips.
		if err := c.reader.CommitMessages(ctx, b.msgs...); err != nil && ctx.Err() == nil {
			c.log.Warn("commit offsets failed; the batch will be redelivered and skipped as duplicates", "err", err)
		}
	}
	cancel()
	for range next { // let the fetcher end before the reader closes
	}
	return nil
}

// fetch waits for one message, then gathers more for up to BatchWait.
func (c *Consumer) fetch(ctx context.Context) ([]kafka.Message, error) {
	m, err := c.reader.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	batch := []kafka.Message{m}
	wctx, cancel := context.WithTimeout(ctx, c.cfg.BatchWait)
	defer cancel()
	for len(batch) < c.cfg.BatchSize {
		m, err := c.reader.FetchMessage(wctx)
		if err != nil {
			break // the wait is over, or the reader failed: apply what we have
		}
		batch = append(batch, m)
	}
	return batch, nil
}

// apply runs Apply until it succeeds or ctx ends.
func (c *Consumer) apply(ctx context.Context, b batch, fails *int) (Result, error) {
	for {
		res, err := c.stages.Apply(ctx, b.prepared)
		if err == nil {
			c.setErr(nil)
			*fails = 0
			return res, nil
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		c.metrics.retries.Inc()
		first := b.msgs[0]
		c.fail(fmt.Sprintf("apply batch of %d from %s[%d]@%d", len(b.msgs), first.Topic, first.Partition, first.Offset), err, fails)
		sleep(ctx, backoff(*fails))
	}
}

func (c *Consumer) fail(what string, err error, fails *int) {
	*fails++
	c.setErr(fmt.Errorf("%s: %w", what, err))
	c.log.Warn(what+" failed; retrying", "err", err, "attempt", *fails)
}

func (c *Consumer) setErr(err error) {
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
}

// Ready reports the last failure to fetch or apply, if the consumer has not
// recovered from it.
func (c *Consumer) Ready(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

func backoff(fails int) time.Duration {
	d := 100 * time.Millisecond << min(fails, 6)
	return min(d, 5*time.Second)
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

type metrics struct {
	changes *prometheus.CounterVec
	lag     *prometheus.GaugeVec
	batch   prometheus.Histogram
	delay   prometheus.Histogram
	retries prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consumer_changes_total",
			Help: "Change events handled, by result: applied, duplicate (skipped), invalid (logged and skipped). rate() of applied is the apply rate."},
			[]string{"result"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "consumer_lag_messages",
			Help: "Messages behind the partition's high watermark after the last batch."}, []string{"topic", "partition"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "consumer_batch_seconds",
			Help: "Time to apply one batch.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "consumer_delay_seconds",
			Help: "From a change's publication to Kafka to its batch being applied.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "consumer_retries_total",
			Help: "Batches retried after a failed apply."}),
	}
	reg.MustRegister(m.changes, m.lag, m.batch, m.delay, m.retries)
	return m
}

// ErrGroupActive is returned by ResetOffsets while the group has members.
var ErrGroupActive = errors.New("the consumer group has active members: stop them first")

// ResetOffsets sets the group's committed offset of every partition of
// topics to the partition's first offset, so that the next member consumes
// everything again. The group must be empty.
func ResetOffsets(ctx context.Context, brokers []string, group string, topics []string) (int, error) {
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return 0, fmt.Errorf("metadata: %w", err)
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range md.Topics {
		if t.Error != nil {
			return 0, fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			req.Topics[t.Name] = append(req.Topics[t.Name], kafka.FirstOffsetOf(p.ID))
		}
	}
	offs, err := cl.ListOffsets(ctx, req)
	if err != nil {
		return 0, fmt.Errorf("list offsets: %w", err)
	}
	commit := &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{}}
	n := 0
	for t, ps := range offs.Topics {
		for _, p := range ps {
			if p.Error != nil {
				return 0, fmt.Errorf("list offsets %s[%d]: %w", t, p.Partition, p.Error)
			}
			commit.Topics[t] = append(commit.Topics[t], kafka.OffsetCommit{Partition: p.Partition, Offset: p.FirstOffset})
			n++
		}
	}
	resp, err := cl.OffsetCommit(ctx, commit)
	if err != nil {
		return 0, fmt.Errorf("commit offsets: %w", err)
	}
	for t, ps := range resp.Topics {
		for _, p := range ps {
			if errors.Is(p.Error, kafka.UnknownMemberId) || errors.Is(p.Error, kafka.IllegalGeneration) || errors.Is(p.Error, kafka.RebalanceInProgress) {
				return 0, fmt.Errorf("group %s: %w", group, ErrGroupActive)
			}
			if p.Error != nil {
				return 0, fmt.Errorf("commit offset %s[%d]: %w", t, p.Partition, p.Error)
			}
		}
	}
	return n, nil
}

// Batch is a decoded batch: its changes without the repeats within it, and
// what was skipped while decoding.
type Batch[C any] struct {
	Changes []C
	Skipped Result
}

// Decode decodes msgs with dec into a Batch: a change whose key came earlier
// in the batch is a duplicate; one dec refuses is logged with its position
// and counted invalid.
func Decode[C any, K comparable](msgs []kafka.Message, log *slog.Logger, dec func(kafka.Message) (C, K, error)) *Batch[C] {
	b := &Batch[C]{Changes: make([]C, 0, len(msgs))}
	seen := make(map[K]bool, len(msgs))
	for _, m := range msgs {
		c, k, err := dec(m)
		switch {
		case err != nil:
			b.Skipped.Invalid++
			log.Error("invalid change skipped", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
		case seen[k]:
			b.Skipped.Duplicates++
		default:
			seen[k] = true
			b.Changes = append(b.Changes, c)
		}
	}
	return b
}

// ApplyBatch writes b with tx, one database transaction that returns how
// many of the changes it applied (the others were applied before). A
// transaction that lost a race (another member inserted the same dedupe
// row first, a deadlock) runs again, and skips what the winner applied.
func ApplyBatch[C any](ctx context.Context, b *Batch[C], tx func(context.Context, []C) (int, error)) (Result, error) {
	res := b.Skipped
	if len(b.Changes) == 0 {
		return res, nil
	}
	for attempt := 0; ; attempt++ {
		applied, err := tx(ctx, b.Changes)
		if err == nil {
			res.Applied = applied
			res.Duplicates += len(b.Changes) - applied
			return res, nil
		}
		if attempt == 5 || !sqldb.Conflict(err) {
			return res, err
		}
	}
}
