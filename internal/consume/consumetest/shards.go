// Package consumetest is the conformance suite every CDC consumer runs
// (Run): a consumer's state must equal a function of the shards' current
// rows whatever the delivery does (order across partitions, redelivery,
// two group members, a reset to the first offsets) and whatever the
// producer does (snapshots retried, a shard restored to an earlier state
// and re-snapshotted), with bookkeeping that does not grow with the
// changes. Shards simulates the shard databases and the change events the
// cdc-producer publishes for their transactions.
package consumetest

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"

	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/cdc"
	"github.com/shopledger/shopledger/internal/cdc/cdctest"
)

// Row is a row image, column to value.
type Row = map[string]any

// Mutation is one row change of a transaction: an insert (Before nil), an
// update, or a delete (After nil).
type Mutation struct {
	Table         string
	Before, After Row
}

// Shards simulates shard databases: the current rows of every table, and
// the change events the cdc-producer publishes for each transaction, with
// source positions growing within an epoch.
type Shards struct {
	subject tables
	rows    []map[string]map[string]Row // [shard][table][primary key]
	epoch   []int64
	file    []int // binlog file number
	pos     []uint32
	ids     []map[string]int64 // last auto-increment id per table
}

// tables is what Shards needs of a subject.
type tables interface {
	pk(table string, r Row) string
	key(table string, r Row) string
	topic(table string) string
}

func newShards(s tables, n int) *Shards {
	sh := &Shards{subject: s, rows: make([]map[string]map[string]Row, n), epoch: make([]int64, n),
		file: make([]int, n), pos: make([]uint32, n), ids: make([]map[string]int64, n)}
	for i := range n {
		sh.rows[i], sh.ids[i] = map[string]map[string]Row{}, map[string]int64{}
		sh.epoch[i], sh.file[i], sh.pos[i] = 1, 1, 4
	}
	return sh
}

// N is the number of shards.
func (s *Shards) N() int { return len(s.rows) }

// Rows returns the current rows of table on shard, by primary key.
func (s *Shards) Rows(shard int, table string) map[string]Row { return s.rows[shard][table] }

// NextID returns the next auto-increment id of table on shard: after the
// largest "id" of its rows, as a server's counter is after a restore.
func (s *Shards) NextID(shard int, table string) int64 {
	last, ok := s.ids[shard][table]
	if !ok {
		for _, r := range s.rows[shard][table] {
			if id, ok := r["id"].(int64); ok {
				last = max(last, id)
			}
		}
	}
	s.ids[shard][table] = last + 1
	return last + 1
}

// Get returns a current row, or nil.
func (s *Shards) Get(shard int, table, pk string) Row { return s.rows[shard][table][pk] }

func (s *Shards) change(shard int, table, op string, row int, before, after Row) cdctest.Change {
	key := after
	if key == nil {
		key = before
	}
	return cdctest.Change{Shard: shard, Epoch: s.epoch[shard], Table: table, Op: op, File: fmt.Sprintf("binlog.%06d", s.file[shard]),
		Pos: s.pos[shard], Row: row, Before: before, After: after, Key: s.subject.key(table, key)}
}

// Commit applies a transaction to shard and returns its change events.
// Each mutation is one rows event (its own position).
func (s *Shards) Commit(shard int, muts []Mutation) []cdctest.Change {
	var out []cdctest.Change
	s.pos[shard] += 100 // the transaction's GTID and BEGIN events
	for _, m := range muts {
		t := s.rows[shard][m.Table]
		if t == nil {
			t = map[string]Row{}
			s.rows[shard][m.Table] = t
		}
		op := cdc.OpUpdate
		switch {
		case m.Before == nil:
			op = cdc.OpCreate
		case m.After == nil:
			op = cdc.OpDelete
		}
		if m.After != nil {
			t[s.subject.pk(m.Table, m.After)] = m.After
		} else {
			delete(t, s.subject.pk(m.Table, m.Before))
		}
		out = append(out, s.change(shard, m.Table, op, 0, m.Before, m.After))
		s.pos[shard] += 100
	}
	return out
}

// Snapshot starts a new epoch on shard and returns every current row as a
// snapshot read, all at one position, as the producer's snapshot does.
func (s *Shards) Snapshot(shard int) []cdctest.Change {
	s.epoch[shard]++
	var out []cdctest.Change
	for _, table := range slices.Sorted(maps.Keys(s.rows[shard])) {
		rows := s.rows[shard][table]
		for i, pk := range slices.Sorted(maps.Keys(rows)) {
			out = append(out, s.change(shard, table, cdc.OpRead, i, nil, rows[pk]))
		}
	}
	s.pos[shard] += 100
	return out
}

// Copy returns a copy of shard's rows, to Restore later.
func (s *Shards) Copy(shard int) map[string]map[string]Row {
	out := map[string]map[string]Row{}
	for table, rows := range s.rows[shard] {
		out[table] = maps.Clone(rows)
	}
	return out
}

// Restore puts shard back to rows (a backup restored, or a failover that
// lost transactions) with its binlog started over: positions repeat the
// ones already published. Its next Snapshot starts a new epoch.
func (s *Shards) Restore(shard int, rows map[string]map[string]Row) {
	s.rows[shard], s.ids[shard] = rows, map[string]int64{}
	s.file[shard], s.pos[shard] = 1, 4
}

// partition is the Kafka partition of a change's key among n, by FNV hash
// (any hash will do: what matters is that one key keeps one partition).
func partition(key string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// Stream is one partition's messages in publication order.
type Stream struct {
	Topic     string
	Partition int
	Msgs      []kafka.Message
}

// streams lays changes out over topics' partitions as the producer
// publishes them: each partition in the changes' order, a delete followed
// by its tombstone.
func (s *Shards) streams(changes []cdctest.Change, partitions int) []*Stream {
	byTP := map[[2]string]*Stream{}
	for _, c := range changes {
		topic := s.subject.topic(c.Table)
		p := partition(c.Key, partitions)
		k := [2]string{topic, fmt.Sprint(p)}
		st := byTP[k]
		if st == nil {
			st = &Stream{Topic: topic, Partition: p}
			byTP[k] = st
		}
		st.Msgs = append(st.Msgs, kafka.Message{Topic: topic, Partition: p, Offset: int64(len(st.Msgs)), Key: []byte(c.Key), Value: c.Value()})
		if c.Op == cdc.OpDelete { // the tombstone the producer writes after a delete (null value)
			st.Msgs = append(st.Msgs, kafka.Message{Topic: topic, Partition: p, Offset: int64(len(st.Msgs)), Key: []byte(c.Key)})
		}
	}
	out := slices.Collect(maps.Values(byTP))
	slices.SortFunc(out, func(a, b *Stream) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return out
}
