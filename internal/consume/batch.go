package consume

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/cdc"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// The bookkeeping of one batch, in the consumer's own database next to its
// state (tables consumer_watermark and consumer_epoch, created by each
// consumer's migrations):
//
//   - consumer_epoch holds, per shard, the epoch of the latest snapshot the
//     state is built on; a change of an older epoch is superseded by it;
//   - consumer_watermark holds, per (shard, topic, partition), the position
//     of the furthest change applied. A partition holds a shard's changes in
//     their order (the producer publishes in binlog order and re-publishes
//     from its checkpoint after a crash), so a change at or behind its
//     watermark was applied before. Deleting a watermark would readmit
//     changes, so watermarks are only deleted together with the state they
//     cover: when a newer snapshot resets the shard.
//
// Both are read with locking reads in the batch's transaction, so two
// members racing on one partition (in a rebalance) apply each change once.

// entry is one decoded message, or a dead letter whose position is known
// (dead set): it moves its watermark like an applied change, so that it is
// never applied by a redelivery, only by a replay of the dead letters.
type entry[C any] struct {
	change C
	pos    cdc.Position
	key    wmKey
	src    cdc.Source
	dead   *deadLetter
}

// wmKey names a watermark.
type wmKey struct {
	shard     int
	topic     string
	partition int
}

// Batch is a fetched batch, decoded: its changes and dead letters of known
// position in message order, and the dead letters whose position is not
// known (no change event at all).
type Batch[C any] struct {
	msgs       []kafka.Message
	entries    []entry[C]
	dead       []deadLetter
	tombstones int
}

// Len is how many messages the batch holds.
func (b *Batch[C]) Len() int { return len(b.msgs) }

// sourceOf is implemented by changes that expose their source block, for
// freshness (file, pos, gtid, commit time).
type sourceOf interface{ Source() cdc.Source }

// Decode decodes msgs through h. A message h refuses becomes a dead letter
// with its reason; a tombstone (the null value after a delete) is counted
// and skipped.
func Decode[C any](h Handler[C], msgs []kafka.Message) *Batch[C] {
	b := &Batch[C]{msgs: msgs, entries: make([]entry[C], 0, len(msgs))}
	for _, m := range msgs {
		if m.Value == nil {
			b.tombstones++
			continue
		}
		c, pos, err := h.Decode(m)
		if err != nil {
			d := &deadLetter{msg: m, reason: err.Error()}
			if pos.Seq == 0 { // no position: nothing to dedupe it by
				b.dead = append(b.dead, *d)
			} else {
				b.entries = append(b.entries, entry[C]{pos: pos, key: wmKey{pos.Shard, m.Topic, m.Partition}, dead: d})
			}
			continue
		}
		e := entry[C]{change: c, pos: pos, key: wmKey{pos.Shard, m.Topic, m.Partition}}
		if s, ok := any(c).(sourceOf); ok {
			e.src = s.Source()
		}
		b.entries = append(b.entries, e)
	}
	return b
}

// DeadLetterer sends the dead letters a batch found new before the batch
// commits; they go nowhere when it is nil (tests of a handler alone).
type DeadLetterer interface {
	send(ctx context.Context, dead []deadLetter) error
}

// Apply applies a decoded batch to db through h in one transaction, with
// its bookkeeping, and hands its new dead letters to dl before committing.
// A transaction that lost a race (a deadlock with another member, say)
// runs again.
func Apply[C any](ctx context.Context, db *sql.DB, h Handler[C], b *Batch[C], dl DeadLetterer) (Result, error) {
	res := Result{Tombstones: b.tombstones}
	if len(b.entries) == 0 {
		if dl != nil {
			if err := dl.send(ctx, b.dead); err != nil {
				return res, err
			}
		}
		res.Dead = len(b.dead)
		return res, nil
	}
	for attempt := 0; ; attempt++ {
		r, err := applyTx(ctx, db, h, b, dl)
		if err == nil {
			res.add(r)
			return res, nil
		}
		if attempt == 5 || !sqldb.Conflict(err) {
			return res, err
		}
	}
}

func applyTx[C any](ctx context.Context, db *sql.DB, h Handler[C], b *Batch[C], dl DeadLetterer) (Result, error) {
	var res Result
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return res, err
	}
	defer tx.Rollback()
	epochs, err := loadEpochs(ctx, tx, b)
	if err != nil {
		return res, err
	}
	// A snapshot of a newer epoch resets its shard before anything of the
	// batch is applied.
	newer := map[int]int64{}
	for _, e := range b.entries {
		if e.pos.Snapshot && e.pos.Epoch > max(epochs[e.pos.Shard], newer[e.pos.Shard]) {
			newer[e.pos.Shard] = e.pos.Epoch
		}
	}
	for _, shard := range slices.Sorted(maps.Keys(newer)) {
		if err := h.Reset(ctx, tx, shard); err != nil {
			return res, fmt.Errorf("reset shard %d for its snapshot of epoch %d: %w", shard, newer[shard], err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM consumer_watermark WHERE shard = ?", shard); err != nil {
			return res, fmt.Errorf("reset shard %d: %w", shard, err)
		}
		epochs[shard] = newer[shard]
	}
	marks, err := loadWatermarks(ctx, tx, b)
	if err != nil {
		return res, err
	}
	changed := map[wmKey]entry[C]{}
	fresh := make([]C, 0, len(b.entries))
	dead := append([]deadLetter(nil), b.dead...)
	for _, e := range b.entries {
		switch w, seen := marks[e.key]; {
		case e.pos.Epoch < epochs[e.pos.Shard]:
			res.Superseded++
		case seen && !e.pos.After(w):
			res.Duplicates++
		default:
			marks[e.key] = e.pos
			changed[e.key] = e
			if e.dead != nil {
				dead = append(dead, *e.dead)
			} else {
				fresh = append(fresh, e.change)
			}
		}
	}
	if len(fresh) > 0 {
		if err := h.Apply(ctx, tx, fresh); err != nil {
			return res, err
		}
	}
	if dl != nil {
		if err := dl.send(ctx, dead); err != nil {
			return res, err
		}
	}
	res.Dead = len(dead)
	if err := saveWatermarks(ctx, tx, changed); err != nil {
		return res, err
	}
	if err := saveEpochs(ctx, tx, newer); err != nil {
		return res, err
	}
	res.Applied = len(fresh)
	return res, tx.Commit()
}

func loadEpochs[C any](ctx context.Context, tx *sql.Tx, b *Batch[C]) (map[int]int64, error) {
	shards := map[int]bool{}
	for _, e := range b.entries {
		shards[e.pos.Shard] = true
	}
	epochs := map[int]int64{}
	err := sqldb.QueryIn(ctx, tx, "SELECT shard, snapshot_epoch FROM consumer_epoch WHERE shard IN (%s) FOR UPDATE",
		slices.Sorted(maps.Keys(shards)), func(r *sql.Rows) error {
			var shard int
			var epoch int64
			err := r.Scan(&shard, &epoch)
			epochs[shard] = epoch
			return err
		})
	if err != nil {
		return nil, fmt.Errorf("read snapshot epochs: %w", err)
	}
	return epochs, nil
}

func saveEpochs(ctx context.Context, tx *sql.Tx, newer map[int]int64) error {
	up := sqldb.Bulk{Head: "INSERT INTO consumer_epoch (shard, snapshot_epoch) VALUES ",
		Tail: " ON DUPLICATE KEY UPDATE snapshot_epoch = GREATEST(snapshot_epoch, VALUES(snapshot_epoch))", Cols: 2}
	for _, shard := range slices.Sorted(maps.Keys(newer)) {
		up.Add(shard, newer[shard])
	}
	if err := up.Exec(ctx, tx); err != nil {
		return fmt.Errorf("save snapshot epochs: %w", err)
	}
	return nil
}

func loadWatermarks[C any](ctx context.Context, tx *sql.Tx, b *Batch[C]) (map[wmKey]cdc.Position, error) {
	keys := map[wmKey]bool{}
	for _, e := range b.entries {
		keys[e.key] = true
	}
	marks := map[wmKey]cdc.Position{}
	sorted := slices.SortedFunc(maps.Keys(keys), compareKeys)
	for start := 0; start < len(sorted); start += sqldb.MaxRows {
		part := sorted[start:min(start+sqldb.MaxRows, len(sorted))]
		conds := make([]string, len(part))
		args := make([]any, 0, 3*len(part))
		for i, k := range part {
			conds[i] = "(?, ?, ?)"
			args = append(args, k.shard, k.topic, k.partition)
		}
		err := sqldb.Each(ctx, tx, "SELECT shard, topic, kafka_partition, epoch, seq, row_no FROM consumer_watermark WHERE (shard, topic, kafka_partition) IN ("+
			strings.Join(conds, ",")+") FOR UPDATE", func(r *sql.Rows) error {
			var k wmKey
			var p cdc.Position
			if err := r.Scan(&k.shard, &k.topic, &k.partition, &p.Epoch, &p.Seq, &p.Row); err != nil {
				return err
			}
			p.Shard = k.shard
			marks[k] = p
			return nil
		}, args...)
		if err != nil {
			return nil, fmt.Errorf("read watermarks: %w", err)
		}
	}
	return marks, nil
}

func saveWatermarks[C any](ctx context.Context, tx *sql.Tx, changed map[wmKey]entry[C]) error {
	// Forward only, each column compared with the stored position before it
	// changes; the position columns last.
	const newer = `(VALUES(epoch), VALUES(seq), VALUES(row_no)) > (epoch, seq, row_no)`
	up := sqldb.Bulk{Head: "INSERT INTO consumer_watermark (shard, topic, kafka_partition, epoch, seq, row_no, file, pos, gtid, source_ts_ms) VALUES ",
		Tail: ` ON DUPLICATE KEY UPDATE file = IF(` + newer + `, VALUES(file), file), pos = IF(` + newer + `, VALUES(pos), pos),
			gtid = IF(` + newer + `, VALUES(gtid), gtid), source_ts_ms = IF(` + newer + `, VALUES(source_ts_ms), source_ts_ms),
			row_no = IF(` + newer + `, VALUES(row_no), row_no), seq = IF((VALUES(epoch), VALUES(seq)) > (epoch, seq), VALUES(seq), seq),
			epoch = GREATEST(epoch, VALUES(epoch))`, Cols: 10}
	for _, k := range slices.SortedFunc(maps.Keys(changed), compareKeys) {
		e := changed[k]
		up.Add(k.shard, k.topic, k.partition, e.pos.Epoch, e.pos.Seq, e.pos.Row, e.src.File, e.src.Pos, e.src.GTID, e.src.TsMs)
	}
	if err := up.Exec(ctx, tx); err != nil {
		return fmt.Errorf("save watermarks: %w", err)
	}
	return nil
}

func compareKeys(a, b wmKey) int {
	return cmp.Or(cmp.Compare(a.shard, b.shard), strings.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
}
