package capture

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// Checkpoint is where a shard's capture resumes: just after the last
// transaction whose every message Kafka acknowledged. It is tagged with the
// server's identity, so that a position is never applied to another server.
type Checkpoint struct {
	Shard    int    `json:"shard"`
	Flavor   string `json:"flavor"`   // mysql or mariadb
	Identity string `json:"identity"` // @@server_uuid (MySQL) or @@server_uid (MariaDB)
	File     string `json:"file"`
	Pos      uint32 `json:"pos"`
	GTID     string `json:"gtid"` // the executed GTID set up to and including the transaction
	TsMs     int64  `json:"ts_ms"`
	// Snapshot is true once the initial snapshot completed.
	Snapshot bool `json:"snapshot"`
	// Epoch is carried in every message's source block (source.epoch). It
	// grows whenever positions stop being comparable with the earlier ones
	// (a re-anchor on another server) or the consumers must rebuild the
	// shard's state (every snapshot), so consumers order changes by
	// (epoch, position) and reset a shard on a newer snapshot.
	Epoch int64 `json:"epoch"`
	// Snapshotting marks a snapshot of Epoch under way: a capture that
	// finds it takes a new snapshot, of a newer epoch, so that consumers
	// drop the rows the interrupted one published.
	Snapshotting bool `json:"snapshotting,omitempty"`
	// EpochFrom is where Epoch's stream starts: the position its snapshot
	// read, or the GTID set the capture re-anchored on another server at.
	// A replay into the live topics starts no earlier: what came before
	// reached the consumers in the snapshot, or has another server's
	// positions. Nil in checkpoints written before it was kept.
	EpochFrom *EpochStart `json:"epoch_from,omitempty"`
}

// EpochStart is where an epoch's stream starts: its first transaction is
// the first one not in GTID (when set), else the first one at or after
// File:Pos.
type EpochStart struct {
	File string `json:"file,omitempty"`
	Pos  uint32 `json:"pos,omitempty"`
	GTID string `json:"gtid,omitempty"`
}

// Checkpoints stores checkpoints in a compacted topic keyed by shard, as
// Kafka Connect stores source offsets.
type Checkpoints struct {
	brokers []string
	topic   string
	w       *kafka.Writer
}

// NewCheckpoints returns a store on topic, which must exist (one partition,
// compacted).
func NewCheckpoints(brokers []string, topic string) *Checkpoints {
	return &Checkpoints{brokers: brokers, topic: topic, w: &kafka.Writer{
		Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll,
		// A checkpoint goes out at once: a batch of one is full, where
		// the default of 100 waited out BatchTimeout on every save.
		BatchSize: 1, BatchTimeout: time.Millisecond, MaxAttempts: 5,
	}}
}

func shardKey(shard int) []byte { return []byte("shard-" + strconv.Itoa(shard)) }

// Save stores cp as the shard's checkpoint and returns once Kafka has it.
func (c *Checkpoints) Save(ctx context.Context, cp Checkpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	if err := c.w.WriteMessages(ctx, kafka.Message{Key: shardKey(cp.Shard), Value: b}); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

// Load returns the shard's latest checkpoint, or ok false if it has none.
func (c *Checkpoints) Load(ctx context.Context, shard int) (cp Checkpoint, ok bool, err error) {
	conn, err := kafka.DialLeader(ctx, "tcp", c.brokers[0], c.topic, 0)
	if err != nil {
		return cp, false, fmt.Errorf("load checkpoint: %w", err)
	}
	first, last, err := conn.ReadOffsets()
	conn.Close()
	if err != nil {
		return cp, false, fmt.Errorf("load checkpoint: %w", err)
	}
	if last <= first {
		return cp, false, nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: c.brokers, Topic: c.topic, Partition: 0, MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		return cp, false, err
	}
	key := string(shardKey(shard))
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return cp, false, fmt.Errorf("load checkpoint: %w", err)
		}
		if string(m.Key) == key {
			var next Checkpoint    // each record whole: no field of an older one survives
			if len(m.Value) == 0 { // tombstone: checkpoint deleted
				cp, ok = Checkpoint{}, false
			} else if err := json.Unmarshal(m.Value, &next); err != nil {
				return cp, false, fmt.Errorf("checkpoint at offset %d: %w", m.Offset, err)
			} else {
				cp, ok = next, true
			}
		}
		if m.Offset >= last-1 {
			return cp, ok, nil
		}
	}
}

// Close flushes and closes the writer.
func (c *Checkpoints) Close() error { return c.w.Close() }
