package consume

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/cdc"
)

// Dead letters: a change that cannot be applied (its value is no change
// event, a row lacks a column the consumer needs, an append-only table was
// updated by hand) is not skipped silently. It goes, with its key and value
// unchanged, to the consumer's dead-letter topic, with headers naming where
// it came from and why, as Kafka Connect's errors.deadletterqueue does, and
// the batch goes on. The watermark moves past it: the rest of its partition
// is applied. An operator sees it (log, metric, /ready, the topic) and can
// apply it again once the cause is mended (replay-dead-letters).

// Header names on a dead letter, those of Kafka Connect's dead-letter
// queue with context headers on.
const (
	HeaderTopic     = "__connect.errors.topic"
	HeaderPartition = "__connect.errors.partition"
	HeaderOffset    = "__connect.errors.offset"
	HeaderReason    = "__connect.errors.exception.message"
	HeaderGroup     = "__connect.errors.connector.name"
	HeaderTime      = "__shopledger.errors.time"
)

// deadLetter is a message that cannot be applied, and why.
type deadLetter struct {
	msg    kafka.Message
	reason string
}

func (d deadLetter) describe() string {
	return fmt.Sprintf("%s[%d]@%d: %s", d.msg.Topic, d.msg.Partition, d.msg.Offset, d.reason)
}

type deadLetters struct {
	cfg   Config
	w     *kafka.Writer
	log   *slog.Logger
	count atomic.Int64
	// counted counts dead letters by origin topic (nil: not counted).
	counted *prometheus.CounterVec
}

func newDeadLetters(cfg Config, log *slog.Logger) *deadLetters {
	return &deadLetters{cfg: cfg, log: log, w: &kafka.Writer{Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.DeadLetterTopic,
		Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, MaxAttempts: 5}}
}

// send writes the dead letters and returns once Kafka has them all.
func (d *deadLetters) send(ctx context.Context, dead []deadLetter) error {
	if len(dead) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(dead))
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for i, l := range dead {
		msgs[i] = kafka.Message{Key: l.msg.Key, Value: l.msg.Value, Headers: append(append([]kafka.Header(nil), l.msg.Headers...),
			kafka.Header{Key: HeaderTopic, Value: []byte(l.msg.Topic)},
			kafka.Header{Key: HeaderPartition, Value: []byte(strconv.Itoa(l.msg.Partition))},
			kafka.Header{Key: HeaderOffset, Value: []byte(strconv.FormatInt(l.msg.Offset, 10))},
			kafka.Header{Key: HeaderReason, Value: []byte(l.reason)},
			kafka.Header{Key: HeaderGroup, Value: []byte(d.cfg.Group)},
			kafka.Header{Key: HeaderTime, Value: []byte(now)})}
	}
	if err := d.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("send %d dead letters to %s: %w", len(dead), d.cfg.DeadLetterTopic, err)
	}
	d.count.Add(int64(len(dead)))
	if d.counted != nil {
		for _, l := range dead {
			d.counted.WithLabelValues(l.msg.Topic).Inc()
		}
	}
	d.log.Error("changes sent to the dead-letter topic", "count", len(dead), "topic", d.cfg.DeadLetterTopic, "first", dead[0].describe())
	return nil
}

func (d *deadLetters) close() { d.w.Close() }

// Replayed is what ReplayDeadLetters did.
type Replayed struct {
	Applied    int // dead letters that decode now and were applied
	Before     int // applied by an earlier replay, skipped
	Superseded int // of an epoch older than their shard's snapshot, skipped
	StillDead  []string
}

// ReplayDeadLetters applies, through h, the dead letters of cfg's
// dead-letter topic that decode now (their cause mended): every message
// from the topic's first offset (or where the last rebuild found its end)
// to its end when the replay started. A
// dead letter is applied even though its partition's watermark moved past
// it (it was skipped, never applied), once: each applied one is recorded by
// where it came from (consumer_replayed) in the same transaction. The ones
// that still cannot be applied are returned with their reason.
func ReplayDeadLetters[C any](ctx context.Context, cfg Config, db *sql.DB, h Handler[C]) (Replayed, error) {
	var out Replayed
	conn, err := kafka.DialLeader(ctx, "tcp", cfg.Brokers[0], cfg.DeadLetterTopic, 0)
	if err != nil {
		return out, fmt.Errorf("dead-letter topic %s: %w", cfg.DeadLetterTopic, err)
	}
	parts, err := conn.ReadPartitions(cfg.DeadLetterTopic)
	conn.Close()
	if err != nil {
		return out, fmt.Errorf("dead-letter topic %s: %w", cfg.DeadLetterTopic, err)
	}
	for _, p := range parts {
		if err := replayPartition(ctx, cfg, db, h, p.ID, &out); err != nil {
			return out, err
		}
	}
	return out, nil
}

func replayPartition[C any](ctx context.Context, cfg Config, db *sql.DB, h Handler[C], partition int, out *Replayed) error {
	conn, err := kafka.DialLeader(ctx, "tcp", cfg.Brokers[0], cfg.DeadLetterTopic, partition)
	if err != nil {
		return err
	}
	first, last, err := conn.ReadOffsets()
	conn.Close()
	if err != nil {
		return err
	}
	// Dead letters from before the last rebuild are out of date (see
	// Rebuild).
	var floor int64
	err = db.QueryRowContext(ctx, "SELECT kafka_offset FROM consumer_dead_letter_start WHERE topic = ? AND kafka_partition = ?",
		cfg.DeadLetterTopic, partition).Scan(&floor)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("dead letters' start: %w", err)
	}
	if first = max(first, floor); first >= last {
		return nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: cfg.Brokers, Topic: cfg.DeadLetterTopic, Partition: partition,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		return err
	}
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return fmt.Errorf("read dead letter: %w", err)
		}
		orig := origin(m)
		c, pos, err := h.Decode(orig)
		if err != nil {
			out.StillDead = append(out.StillDead, deadLetter{msg: orig, reason: err.Error()}.describe())
		} else if err := replayOne(ctx, db, h, orig, c, pos, out); err != nil {
			return err
		}
		if m.Offset >= last-1 {
			return nil
		}
	}
}

// origin is the message a dead letter was made from: its key, value and
// the topic, partition and offset its headers name.
func origin(m kafka.Message) kafka.Message {
	o := kafka.Message{Key: m.Key, Value: m.Value, Time: m.Time}
	for _, h := range m.Headers {
		switch h.Key {
		case HeaderTopic:
			o.Topic = string(h.Value)
		case HeaderPartition:
			o.Partition, _ = strconv.Atoi(string(h.Value))
		case HeaderOffset:
			o.Offset, _ = strconv.ParseInt(string(h.Value), 10, 64)
		}
	}
	return o
}

func replayOne[C any](ctx context.Context, db *sql.DB, h Handler[C], m kafka.Message, c C, pos cdc.Position, out *Replayed) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var epoch int64
	err = tx.QueryRowContext(ctx, "SELECT snapshot_epoch FROM consumer_epoch WHERE shard = ? FOR UPDATE", pos.Shard).Scan(&epoch)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if pos.Epoch < epoch {
		out.Superseded++
		return nil
	}
	res, err := tx.ExecContext(ctx, "INSERT INTO consumer_replayed (topic, kafka_partition, kafka_offset) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE kafka_offset = kafka_offset",
		m.Topic, m.Partition, m.Offset)
	if err != nil {
		return fmt.Errorf("record replayed dead letter: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		out.Before++
		return nil
	}
	if err := h.Apply(ctx, tx, []C{c}); err != nil {
		return fmt.Errorf("apply dead letter %s[%d]@%d: %w", m.Topic, m.Partition, m.Offset, err)
	}
	out.Applied++
	return tx.Commit()
}
