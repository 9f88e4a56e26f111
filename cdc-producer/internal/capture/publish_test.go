package capture

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shopledger/shopledger/internal/topics"
)

// pubEnv is a broker with a checkpoint topic and topics a and b (3
// partitions each), and the checkpoints a publisher saved.
type pubEnv struct {
	t       *testing.T
	cluster *kfake.Cluster
	brokers []string
	cps     *Checkpoints
	limit   int // the publishers' group limit

	mu    sync.Mutex
	saved []Checkpoint
	fails []error
}

func newPubEnv(t *testing.T) *pubEnv {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	e := &pubEnv{t: t, cluster: cluster, brokers: cluster.ListenAddrs(), limit: 2000}
	if err := topics.Ensure(context.Background(), e.brokers, topics.DefaultSettings.Compacted("cps"),
		topics.Spec{Name: "a", Partitions: 3}, topics.Spec{Name: "b", Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	e.cps = NewCheckpoints(e.brokers, "cps")
	t.Cleanup(func() { e.cps.Close() })
	return e
}

// start starts a publisher compressing with c.
func (e *pubEnv) start(c Compression) *publisher {
	codec, err := c.codec()
	if err != nil {
		e.t.Fatal(err)
	}
	client := &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: produceTimeout}
	return newPublisher(context.Background(), client, codec, e.cps, nil, e.limit, func(cp Checkpoint) {
		e.mu.Lock()
		e.saved = append(e.saved, cp)
		e.mu.Unlock()
	}, testLogger(e.t), func(err error) {
		e.mu.Lock()
		e.fails = append(e.fails, err)
		e.mu.Unlock()
	})
}

// sample is messages of every shape the capture writes: keyed JSON,
// tombstones, headers, an empty value, set times.
func sample(topic string, n int) []kafka.Message {
	var msgs []kafka.Message
	for i := range n {
		m := kafka.Message{Topic: topic, Key: fmt.Appendf(nil, `{"id":%d}`, i%97), Value: fmt.Appendf(nil, `{"after":{"id":%d,"name":"g-%d"}}`, i, i)}
		switch i % 10 {
		case 3:
			m.Value = nil // a tombstone
		case 5:
			m.Headers = []kafka.Header{{Key: HeaderTraceParent, Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}, {Key: "empty"}}
		case 7:
			m.Value = []byte{}
		case 9:
			m.Time = time.UnixMilli(1_600_000_000_000 + int64(i))
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// record is what a consumer sees of a message.
type record struct {
	key, value string
	null       bool
	headers    string
	ts         int64 // 0 unless the message set its time
}

// read returns each partition's records of topic, n in all.
func (e *pubEnv) read(topic string, n int) map[int32][]record {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	out := map[int32][]record{}
	got := 0
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for got < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			rec := record{key: string(r.Key), value: string(r.Value), null: r.Value == nil}
			for _, h := range r.Headers {
				rec.headers += h.Key + "=" + string(h.Value) + ";"
			}
			if ms := r.Timestamp.UnixMilli(); ms >= 1_600_000_000_000 && ms < 1_700_000_000_000 { // a time the message set
				rec.ts = ms
			}
			out[r.Partition] = append(out[r.Partition], rec)
			got++
		})
	}
	if got != n {
		e.t.Fatalf("topic %s holds %d records, want %d", topic, got, n)
	}
	return out
}

// readKafkaGo reads the first n records of topic's partition with
// kafka-go's Reader.
func (e *pubEnv) readKafkaGo(topic string, partition, n int) []record {
	e.t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.brokers, Topic: topic, Partition: partition, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []record
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			e.t.Fatalf("read %s/%d: %v", topic, partition, err)
		}
		rec := record{key: string(m.Key), value: string(m.Value), null: m.Value == nil}
		for _, h := range m.Headers {
			rec.headers += h.Key + "=" + string(h.Value) + ";"
		}
		if ms := m.Time.UnixMilli(); ms >= 1_600_000_000_000 && ms < 1_700_000_000_000 {
			rec.ts = ms
		}
		out = append(out, rec)
	}
	return out
}

// emptyAsNull returns recs with empty values as null ones.
func emptyAsNull(recs []record) []record {
	out := slices.Clone(recs)
	for i := range out {
		out[i].null = out[i].null || out[i].value == ""
	}
	return out
}

func (e *pubEnv) savedCheckpoints() []Checkpoint {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.saved)
}

// The publisher puts each message where kafka-go's Writer with the
// capture's settings (NewWriter, which replay publishes with) puts it, in
// the same order and with the same key, value, headers and time, in every
// compression.
func TestPublisherWritesAsTheWriter(t *testing.T) {
	for _, c := range Compressions {
		t.Run(string(c), func(t *testing.T) {
			e := newPubEnv(t)
			const n = 5000
			w := NewWriter(e.brokers, 1000)
			defer w.Close()
			if err := w.WriteMessages(context.Background(), sample("a", n)...); err != nil {
				t.Fatal(err)
			}
			p := e.start(c)
			msgs := sample("b", n)
			for len(msgs) > 0 { // items of uneven sizes, a checkpoint now and then
				k := min(len(msgs), 1+len(msgs)%1733)
				if err := p.send(context.Background(), item{msgs: slices.Clone(msgs[:k])}); err != nil {
					t.Fatal(err)
				}
				msgs = msgs[k:]
				if err := p.send(context.Background(), item{cp: &Checkpoint{Shard: 1, Pos: uint32(n - len(msgs))}}); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.close(); err != nil {
				t.Fatal(err)
			}
			want, got := e.read("a", n), e.read("b", n)
			for part := range int32(3) {
				if !slices.Equal(got[part], want[part]) {
					t.Errorf("partition %d: the publisher wrote %d records, the Writer %d, or they differ", part, len(got[part]), len(want[part]))
				}
			}
			// kafka-go's Reader, as balance and cache read, sees the same
			// (but for an empty value, which its Message holds as nil).
			if r := e.readKafkaGo("b", 0, len(got[0])); !slices.Equal(emptyAsNull(r), emptyAsNull(got[0])) {
				t.Errorf("kafka-go's Reader read %d records of partition 0, franz-go %d, or they differ", len(r), len(got[0]))
			}
			saved := e.savedCheckpoints()
			if len(saved) == 0 || saved[len(saved)-1].Pos != n {
				t.Errorf("last checkpoint saved = %v, want the last one queued (pos %d)", saved, n)
			}
			for i := 1; i < len(saved); i++ {
				if saved[i].Pos <= saved[i-1].Pos {
					t.Errorf("checkpoints saved out of order: %v", saved)
				}
			}
		})
	}
}

// failProduce makes the broker answer produce requests to topic's
// partition with code, times times (forever if negative).
func (e *pubEnv) failProduce(topic string, partition int32, code int16, times int) {
	var mu sync.Mutex
	e.cluster.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		if len(req.Topics) != 1 || req.Topics[0].Topic != topic || len(req.Topics[0].Partitions) != 1 ||
			req.Topics[0].Partitions[0].Partition != partition {
			return nil, nil, false
		}
		mu.Lock()
		defer mu.Unlock()
		if times == 0 {
			return nil, nil, false
		}
		times--
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceResponseTopicPartition()
		rp.Partition, rp.ErrorCode = partition, code
		rt.Partitions = append(rt.Partitions, rp)
		resp.Topics = append(resp.Topics, rt)
		return resp, nil, true
	})
}

// A partition Kafka refuses holds every later checkpoint back, whatever
// the other partitions acknowledged: the publisher fails without saving
// one, and says why.
func TestCheckpointWaitsForEveryPartition(t *testing.T) {
	e := newPubEnv(t)
	e.failProduce("b", 1, kerr.InvalidRecord.Code, -1)
	p := e.start(CompressionLZ4)
	err := p.send(context.Background(), item{msgs: sample("b", 300)})
	if err == nil {
		err = p.send(context.Background(), item{cp: &Checkpoint{Shard: 1, Pos: 300}})
	}
	if err == nil {
		err = p.close()
	}
	if !errors.Is(err, kafka.InvalidRecord) {
		t.Errorf("publisher's error = %v, want Kafka's InvalidRecord", err)
	}
	if saved := e.savedCheckpoints(); len(saved) != 0 {
		t.Errorf("checkpoints saved = %v, want none", saved)
	}
	if _, ok, err := e.cps.Load(context.Background(), 1); ok || err != nil {
		t.Errorf("Load = %v, %v, want no checkpoint", ok, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.fails) != 1 {
		t.Errorf("fail called with %v, want the error once", e.fails)
	}
}

// What Kafka calls temporary is retried: every message arrives once, and
// then the checkpoint is saved.
func TestPublisherRetriesTemporaryErrors(t *testing.T) {
	e := newPubEnv(t)
	e.failProduce("b", 2, kerr.NotLeaderForPartition.Code, 2)
	p := e.start(CompressionNone)
	msgs := sample("b", 300)
	if err := p.send(context.Background(), item{msgs: msgs}); err != nil {
		t.Fatal(err)
	}
	if err := p.send(context.Background(), item{cp: &Checkpoint{Shard: 1, Pos: 300}}); err != nil {
		t.Fatal(err)
	}
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	got := e.read("b", len(msgs))
	seen := map[string]int{}
	for _, recs := range got {
		for _, r := range recs {
			seen[r.key+r.value+strconv.FormatBool(r.null)]++
		}
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("record %s arrived %d times", k, n)
		}
	}
	if saved := e.savedCheckpoints(); len(saved) != 1 || saved[0].Pos != 300 {
		t.Errorf("checkpoints saved = %v, want pos 300", saved)
	}
}

// While a checkpoint is being saved, the transactions ending meanwhile
// wait as one group, and only the last of their checkpoints is saved:
// with every checkpoint write taking 50 ms, 40 transactions queued at
// once cost a few saves, not 40, and every message arrives once.
func TestGroupCommit(t *testing.T) {
	e := newPubEnv(t)
	e.slowProduce("cps", 50*time.Millisecond)
	p := e.start(CompressionLZ4)
	const txns, rows = 40, 5
	for i := range txns {
		if err := p.send(context.Background(), item{msgs: sample("b", rows)}); err != nil {
			t.Fatal(err)
		}
		if err := p.send(context.Background(), item{cp: &Checkpoint{Shard: 1, Pos: uint32(i + 1)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, recs := range e.read("b", txns*rows) {
		n += len(recs)
	}
	if n != txns*rows {
		t.Errorf("%d records in Kafka, want %d", n, txns*rows)
	}
	saved := e.savedCheckpoints()
	if len(saved) == 0 || len(saved) > 5 || saved[len(saved)-1].Pos != txns {
		t.Errorf("%d checkpoints saved (%v), want at most 5, the last at pos %d", len(saved), saved, txns)
	}
}

// slowProduce makes the broker answer produce requests to topic after d.
func (e *pubEnv) slowProduce(topic string, d time.Duration) {
	e.cluster.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		if len(req.Topics) == 1 && req.Topics[0].Topic == topic {
			e.cluster.SleepControl(func() { time.Sleep(d) })
		}
		return nil, nil, false
	})
}

// What a crash repeats is bounded: with the checkpoint topic refusing
// writes, Kafka gets the group the committer took (the first transaction,
// or more if the committer was not yet free) and the group that filled
// behind it, each ending at the first transaction end at or past the
// limit of 10 rows (three transactions of 4), and nothing of the later
// ones: at most 24 of the 120 messages.
func TestUnsavedBounded(t *testing.T) {
	e := newPubEnv(t)
	e.limit = 10
	e.failProduce("cps", 0, kerr.InvalidRecord.Code, -1)
	p := e.start(CompressionLZ4)
	for i := range 30 {
		if p.send(context.Background(), item{msgs: sample("a", 4)}) != nil ||
			p.send(context.Background(), item{cp: &Checkpoint{Shard: 1, Pos: uint32(i + 1)}}) != nil {
			break
		}
	}
	var we kafka.WriteErrors
	if err := p.close(); !errors.As(err, &we) || len(we) != 1 || !errors.Is(we[0], kafka.InvalidRecord) {
		t.Errorf("publisher's error = %v, want the checkpoint write's InvalidRecord", err)
	}
	if n := e.count("a", 2*time.Second); n < 4 || n > 2*12 {
		t.Errorf("%d messages in Kafka, want the first transaction's 4 and at most 2 groups of 12", n)
	}
	if saved := e.savedCheckpoints(); len(saved) != 0 {
		t.Errorf("checkpoints saved = %v, want none", saved)
	}
}

// count returns the records topic holds after reading it for d.
func (e *pubEnv) count(topic string, d time.Duration) int {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	n := 0
	for ctx.Err() == nil {
		n += cl.PollFetches(ctx).NumRecords()
	}
	return n
}
