// Package consume runs a Kafka consumer-group member that applies change
// events to its service's database through a typed Handler, owning the
// whole path end to end: fetch, decode, dedupe, one database transaction
// per batch, dead letters, and committing offsets only after that
// transaction committed. Delivery is at least once; the bookkeeping makes
// redelivery, shuffling across partitions, several members and a reset to
// the first offsets harmless:
//
//   - a partition keeps each shard's changes in the order of their source
//     positions, so per (shard, topic, partition) a watermark, the furthest
//     position applied, tells an applied change from a new one: state per
//     shard and partition, not per change, so it does not grow with the
//     changes (batch.go);
//   - positions are ordered by (epoch, position): the cdc-producer starts a
//     new epoch whenever positions stop being comparable with earlier ones
//     (another server, a restored shard, RESET MASTER) or the state must be
//     rebuilt; when a snapshot of a newer epoch arrives, the shard's
//     contribution to the state is reset and rebuilt from it, and changes
//     of older epochs still in flight are skipped as superseded.
package consume

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/cdc"
	"github.com/shopledger/shopledger/internal/config"
	"github.com/shopledger/shopledger/internal/retry"
	"github.com/shopledger/shopledger/internal/topics"
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
	// DeadLetterTopic receives the changes that cannot be applied, with
	// the reason in their headers; the consumer creates it.
	DeadLetterTopic string `mapstructure:"dead_letter_topic"`
	// DeadLetters are the partitions, replication and retention of the
	// dead-letter topic.
	DeadLetters topics.Settings `mapstructure:",squash"`
}

// Check adds the section's problems to ch.
func (c *Config) Check(ch *config.Checks) {
	ch.Check(len(c.Brokers) > 0, "kafka.brokers", "must list at least one broker")
	ch.Check(c.Group != "", "kafka.group", "must be set")
	ch.Check(len(c.Topics) > 0, "kafka.topics", "must list at least one topic")
	ch.Check(c.BatchSize >= 1, "kafka.batch_size", "must be at least 1, got %d", c.BatchSize)
	ch.Check(c.BatchWait > 0, "kafka.batch_wait", "must be positive, got %s", c.BatchWait)
	ch.Check(c.SessionTimeout >= time.Second, "kafka.session_timeout", "must be at least 1s, got %s", c.SessionTimeout)
	ch.Check(c.DeadLetterTopic != "", "kafka.dead_letter_topic", "must be set")
	c.DeadLetters.Check(ch, "kafka")
}

// Handler is what a consumer brings; the loop owns everything else.
type Handler[C any] interface {
	// Decode reads one message into a change and its position. An error
	// sends the message to the dead-letter topic with the error as reason.
	Decode(m kafka.Message) (C, cdc.Position, error)
	// Apply adds new changes, in partition order, to the state in tx.
	Apply(ctx context.Context, tx *sql.Tx, changes []C) error
	// Reset removes shard's contribution from the state in tx: a snapshot
	// of a newer epoch follows, which rebuilds it.
	Reset(ctx context.Context, tx *sql.Tx, shard int) error
	// Clear empties the whole state in tx (every table Apply writes), before
	// a rebuild applies every change again.
	Clear(ctx context.Context, tx *sql.Tx) error
}

// Result is what a batch did.
type Result struct {
	Applied    int // changes that changed the state
	Duplicates int // changes applied before (at or behind a watermark), skipped
	Superseded int // changes of an epoch older than their shard's snapshot, skipped
	Dead       int // changes that cannot be applied, sent to the dead-letter topic
	Tombstones int // delete tombstones (no value), nothing to apply
}

// Handled is every message the batch accounted for.
func (r Result) Handled() int { return r.Applied + r.Duplicates + r.Superseded + r.Dead + r.Tombstones }

func (r *Result) add(o Result) {
	r.Applied += o.Applied
	r.Duplicates += o.Duplicates
	r.Superseded += o.Superseded
	r.Dead += o.Dead
	r.Tombstones += o.Tombstones
}

// Consumer is one member of the group.
type Consumer[C any] struct {
	cfg     Config
	db      *sql.DB
	h       Handler[C]
	log     *slog.Logger
	metrics *metrics
	reader  *kafka.Reader
	dead    *deadLetters

	mu      sync.Mutex
	lastErr error // of the last fetch or apply; nil when healthy
}

// New returns a member applying to db through h; Run starts it.
func New[C any](cfg Config, db *sql.DB, h Handler[C], reg prometheus.Registerer, log *slog.Logger) *Consumer[C] {
	c := &Consumer[C]{cfg: cfg, db: db, h: h, log: log, metrics: newMetrics(reg), dead: newDeadLetters(cfg, log)}
	c.dead.counted = c.metrics.dead
	for _, t := range cfg.Topics {
		c.metrics.dead.WithLabelValues(t) // present from the start, at 0
	}
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

// Run consumes until ctx ends. Errors of the broker or the database are
// logged and retried with backoff, never skipped: a batch's offsets are
// committed only once it was applied. The next batch is fetched and
// decoded while one is applied.
func (c *Consumer[C]) Run(ctx context.Context) error {
	defer c.reader.Close()
	defer c.dead.close()
	if err := topics.Ensure(ctx, c.cfg.Brokers, c.cfg.DeadLetters.Changes(c.cfg.DeadLetterTopic)); err != nil {
		return fmt.Errorf("dead-letter topic: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan *Batch[C], 1)
	go func() {
		defer close(next)
		wait := retry.Default()
		for ctx.Err() == nil {
			msgs, err := c.fetch(ctx)
			if err != nil {
				if ctx.Err() == nil {
					c.fail(ctx, "fetch", err, wait)
				}
				continue
			}
			wait.Reset()
			select {
			case next <- Decode(c.h, msgs):
			case <-ctx.Done():
			}
		}
	}()
	wait := retry.Default()
	for b := range next {
		start := time.Now()
		bctx, traced := c.traceBatch(ctx, b)
		res, err := c.apply(bctx, b, wait)
		traced(res, err)
		if err != nil {
			break // ctx ended
		}
		c.metrics.observe(b, res, time.Since(start))
		// A failed commit (the partition moved to another member in a
		// rebalance, say) only means redelivery, which the watermarks skip.
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
func (c *Consumer[C]) fetch(ctx context.Context) ([]kafka.Message, error) {
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

// apply applies the batch and sends its new dead letters, retrying until
// both succeed or ctx ends.
func (c *Consumer[C]) apply(ctx context.Context, b *Batch[C], wait *retry.Backoff) (Result, error) {
	for {
		res, err := Apply(ctx, c.db, c.h, b, c.dead)
		if err == nil {
			c.setErr(nil)
			wait.Reset()
			return res, nil
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		c.metrics.retries.Inc()
		first := b.msgs[0]
		c.fail(ctx, fmt.Sprintf("apply batch of %d from %s[%d]@%d", len(b.msgs), first.Topic, first.Partition, first.Offset), err, wait)
	}
}

func (c *Consumer[C]) fail(ctx context.Context, what string, err error, wait *retry.Backoff) {
	c.setErr(fmt.Errorf("%s: %w", what, err))
	d := wait.Next()
	c.log.Warn(what+" failed; retrying", "err", err, "retry_in", d)
	retry.Sleep(ctx, d)
}

func (c *Consumer[C]) setErr(err error) {
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
}

// Ready reports the last failure to fetch or apply, if the consumer has not
// recovered from it.
func (c *Consumer[C]) Ready(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// DeadLetters is how many changes this member sent to the dead-letter
// topic since it started, and the topic.
func (c *Consumer[C]) DeadLetters() (int64, string) {
	return c.dead.count.Load(), c.cfg.DeadLetterTopic
}
