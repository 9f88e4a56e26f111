package capture

// The publisher: Kafka behind the binlog reader, so that decoding goes on
// while Kafka acknowledges. It takes items in order, batches of messages
// and transaction ends; it lays each message into the record batch of its
// topic partition (batch.go), chosen as kafka-go's Writer with the
// Murmur2Balancer chooses it (Kafka's own clients' partitioner), and each
// partition's sender sends its batches one at a time, in order,
// acknowledged by every in-sync replica (partition.go). Batches fill while
// their partition has one in flight; a partition with nothing in flight
// sends as soon as a transaction ends or the reader has nothing more
// queued.
//
// Checkpoints are saved by group commit. At a transaction's end the
// publisher notes the last batch of each partition written to since the
// previous end (which vouches for the earlier ones: a sender stops at its
// first failure) and hands the checkpoint with those batches to the
// committer, which waits until they are acknowledged and saves it. While
// the committer works, the transactions ending meanwhile form the next
// group, and only the last of their checkpoints is saved, once the
// committer is free: small transactions share a produce and a checkpoint
// round trip instead of paying both each. Once the waiting group reaches
// the group limit (capture.group_rows), the publisher takes nothing more
// until the committer takes the group. So a crash repeats at most what
// was published after the last saved checkpoint: the group being saved
// and the group waiting behind it, each ending at the first transaction
// end at or past the limit. The first error stops it; the reader then
// starts over from the last saved checkpoint.

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

type item struct {
	msgs []kafka.Message
	// chunks are the encoder's arena chunks that only msgs and earlier
	// items' messages were cut from: free once msgs are in batches.
	chunks [][]byte
	cp     *Checkpoint // a transaction's end: the checkpoint past it
}

// group is transactions whose checkpoint is saved once their batches are
// acknowledged.
type group struct {
	cp    Checkpoint     // the last transaction's
	after []*recordBatch // the last batch of each partition each transaction wrote to
	rows  int
}

// queueDepth bounds the items queued for the publisher, and so the memory
// they hold.
const queueDepth = 4

// maxBatches bounds the record batches open or in flight (each up to
// maxBatchBytes): the memory between the reader and Kafka's
// acknowledgement. 16 cost about 5 MiB more peak RSS than 8 in
// BenchmarkCDC, at the same rate.
const maxBatches = 8

// Sending a batch: up to produceAttempts tries, with a backoff doubling
// from produceBackoff up to a second, for errors Kafka or the network
// call temporary (kafka-go's Writer's MaxAttempts 5 and its backoff), each
// within produceTimeout.
const (
	produceAttempts = 5
	produceBackoff  = 100 * time.Millisecond
	produceTimeout  = 10 * time.Second
)

// metadataAge is how long a topic's partition count is used before it is
// looked up again (kafka-go's transport refreshes its cache every 6 s).
const metadataAge = 5 * time.Second

type publisher struct {
	client  *kafka.Client
	codec   kafka.CompressionCodec // nil: none
	cps     *Checkpoints
	limit   int // rows the waiting group reaches before the run waits for the committer
	saved   func(Checkpoint)
	log     *slog.Logger
	parent  context.Context
	ctx     context.Context
	cancel  context.CancelFunc
	fail    func(error)
	items   chan item
	free    chan []kafka.Message // message slices handed back to the reader
	chunks  chan []byte          // arena chunks handed back to the encoder
	slots   chan struct{}        // a token per batch open or in flight
	groups  chan *group          // to the committer, which takes one when the one before is saved
	bufs    batchBufs            // records
	zbufs   batchBufs            // compressed records
	senders sync.WaitGroup
	stopped chan struct{} // closed once every goroutine returned

	errOnce   sync.Once
	err       error
	failed    chan struct{} // closed once err is set
	closeOnce sync.Once

	// The run goroutine's.
	balancer kafka.Murmur2Balancer
	topics   map[string]*topicParts
	all      []*partition
	dirty    []*partition // written to since the last transaction end
	rows     int          // messages taken since the last transaction end
	waiting  *group       // ended, not yet taken by the committer
}

// topicParts are a topic's partitions.
type topicParts struct {
	parts   []*partition
	ids     []int // 0..len(parts)-1, for the balancer
	checked time.Time
}

// newPublisher starts a publisher on client; fail is called with its error
// if it stops on one while ctx is live. codec compresses the batches (nil:
// none); the items' arena chunks go back to chunks (nil: nowhere); limit
// is the rows of the group of transactions that waits for the one being
// saved before the publisher stops taking more (at least 1).
func newPublisher(ctx context.Context, client *kafka.Client, codec kafka.CompressionCodec, cps *Checkpoints, chunks chan []byte,
	limit int, saved func(Checkpoint), log *slog.Logger, fail func(error)) *publisher {
	p := &publisher{client: client, codec: codec, cps: cps, chunks: chunks, limit: max(limit, 1), saved: saved, log: log,
		parent: ctx, fail: fail, items: make(chan item, queueDepth), free: make(chan []kafka.Message, queueDepth+2),
		slots: make(chan struct{}, maxBatches), bufs: make(batchBufs, maxBatches), zbufs: make(batchBufs, maxBatches),
		groups: make(chan *group), stopped: make(chan struct{}),
		failed: make(chan struct{}), topics: map[string]*topicParts{}}
	p.ctx, p.cancel = context.WithCancel(ctx)
	go func() {
		committed := make(chan struct{})
		go func() {
			defer close(committed)
			if err := p.committer(); err != nil {
				p.setErr(err)
			}
		}()
		if err := p.run(); err != nil {
			p.setErr(err)
		}
		<-committed
		p.senders.Wait()
		p.cancel()
		close(p.stopped)
	}()
	return p
}

// setErr stops the publisher on its first error.
func (p *publisher) setErr(err error) {
	p.errOnce.Do(func() {
		p.err = err
		close(p.failed)
		if p.parent.Err() == nil {
			p.fail(err)
		}
		p.cancel()
	})
}

// send queues an item; it fails once the publisher has failed.
func (p *publisher) send(ctx context.Context, it item) error {
	select {
	case p.items <- it:
		return nil
	case <-p.failed:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// slice returns an empty message slice for the reader to fill, one the
// publisher is done with when there is one.
func (p *publisher) slice(capacity int) []kafka.Message {
	select {
	case s := <-p.free:
		return s[:0]
	default:
		return make([]kafka.Message, 0, capacity)
	}
}

// close waits until every queued item is written and returns the first
// error. Closing again returns the same.
func (p *publisher) close() error {
	p.closeOnce.Do(func() { close(p.items) })
	<-p.stopped
	return p.err
}

// run lays the queued messages into batches and hands the transaction
// ends to the committer, until the queue is closed.
func (p *publisher) run() error {
	defer close(p.groups)
	defer p.kick(true) // on close: whatever is open goes out
	for {
		it, ok := p.next()
		if !ok {
			break
		}
		if err := p.take(it); err != nil {
			return err
		}
		if len(p.items) == 0 {
			p.kick(false) // the reader has nothing more: what is open goes out where nothing is in flight
		}
	}
	if p.waiting != nil && p.ctx.Err() == nil {
		p.handOver(true)
	}
	return p.ctx.Err()
}

// next waits for the next queued item, meanwhile handing the waiting
// group to the committer once it is free; false once the queue is closed
// or the publisher stopped.
func (p *publisher) next() (item, bool) {
	for {
		var groups chan *group // nil, and so never ready, without a waiting group
		if p.waiting != nil {
			p.handOver(false) // a free committer takes it before more items join it
		}
		if p.waiting != nil {
			groups = p.groups
		}
		select {
		case it, ok := <-p.items:
			return it, ok
		case groups <- p.waiting:
			p.waiting = nil
		case <-p.ctx.Done():
			return item{}, false
		}
	}
}

// take lays an item's messages into batches, or ends a transaction.
func (p *publisher) take(it item) error {
	if it.cp != nil {
		return p.end(*it.cp)
	}
	p.rows += len(it.msgs)
	now := time.Now()
	var last *topicParts
	var lastTopic string
	for i := range it.msgs {
		m := &it.msgs[i]
		if last == nil || m.Topic != lastTopic {
			var err error
			if last, err = p.topic(m.Topic, now); err != nil {
				return err
			}
			lastTopic = m.Topic
		}
		part := last.parts[p.balancer.Balance(*m, last.ids...)]
		ts := now.UnixMilli()
		if !m.Time.IsZero() {
			ts = m.Time.UnixMilli()
		}
		if err := p.add(part, m, ts, now); err != nil {
			return err
		}
	}
	clear(it.msgs) // drops the references to the encoded bytes
	select {
	case p.free <- it.msgs:
	default:
	}
	if p.chunks != nil {
		putChunks(p.chunks, it.chunks)
	}
	return nil
}

// add appends m to part's open batch, opening one if it has none or m
// does not fit.
func (p *publisher) add(part *partition, m *kafka.Message, ts int64, now time.Time) error {
	if !part.dirty {
		part.dirty = true
		p.dirty = append(p.dirty, part)
	}
	part.mu.Lock()
	if b := part.open; b != nil && b.fits(m) {
		b.add(m, ts)
		part.mu.Unlock()
		return nil
	}
	if part.open != nil {
		p.sealLocked(part)
	}
	part.mu.Unlock()
	if size := recordSize(m) + headerSize; size > maxBatchBytes {
		return fmt.Errorf("a message of %d bytes to %s is larger than a batch may be (%d bytes)", size, m.Topic, maxBatchBytes)
	}
	if err := p.acquire(); err != nil {
		return err
	}
	b := newRecordBatch(p.bufs.get(), now)
	b.add(m, ts)
	part.mu.Lock()
	part.open, part.last = b, b // only this goroutine opens batches: none was opened meanwhile
	part.mu.Unlock()
	return nil
}

// acquire takes a batch slot, waiting for one if every slot is taken;
// meanwhile the open batches go out, which frees slots.
func (p *publisher) acquire() error {
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	p.kick(false)
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-p.ctx.Done():
		return p.stopErr()
	}
}

// topic returns topic's partitions, looking their number up when it was
// not for metadataAge (the transport answers from its cache).
func (p *publisher) topic(topic string, now time.Time) (*topicParts, error) {
	tp := p.topics[topic]
	if tp != nil && now.Sub(tp.checked) < metadataAge {
		return tp, nil
	}
	md, err := p.client.Metadata(p.ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err == nil && (len(md.Topics) != 1 || md.Topics[0].Error != nil) {
		err = kafka.UnknownTopicOrPartition
		if len(md.Topics) == 1 {
			err = md.Topics[0].Error
		}
	}
	if err == nil && len(md.Topics[0].Partitions) == 0 {
		err = kafka.UnknownTopicOrPartition
	}
	if err != nil {
		if tp != nil {
			return tp, nil // the count known last holds until the metadata is back
		}
		return nil, fmt.Errorf("partitions of topic %s: %w", topic, err)
	}
	if tp == nil {
		tp = &topicParts{}
		p.topics[topic] = tp
	}
	for id := len(tp.parts); id < len(md.Topics[0].Partitions); id++ {
		part := &partition{topic: topic, id: id}
		tp.parts, tp.ids = append(tp.parts, part), append(tp.ids, id)
		p.all = append(p.all, part)
	}
	tp.checked = now
	return tp, nil
}

// end ends a transaction: its checkpoint joins the waiting group with the
// last batch of each partition written to since the previous end, and the
// group goes to the committer at once if it is free. A group that reached
// the limit waits for it.
func (p *publisher) end(cp Checkpoint) error {
	g := p.waiting
	if g == nil {
		g = &group{}
		p.waiting = g
	}
	for _, part := range p.dirty {
		part.mu.Lock()
		if part.last != nil {
			g.after = append(g.after, part.last)
		}
		// The batch it waits for goes out now where nothing is in
		// flight; a sender at work takes it next.
		if part.open != nil && !part.sending {
			p.sealLocked(part)
		}
		part.mu.Unlock()
		part.dirty = false
	}
	p.dirty = p.dirty[:0]
	g.cp, g.rows, p.rows = cp, g.rows+p.rows, 0
	return p.handOver(g.rows >= p.limit)
}

// handOver gives the waiting group to the committer if it is free, or, if
// wait, once it is; it fails only if the publisher stops while waiting.
func (p *publisher) handOver(wait bool) error {
	select {
	case p.groups <- p.waiting:
		p.waiting = nil
		return nil
	default:
	}
	if !wait {
		return nil
	}
	select {
	case p.groups <- p.waiting:
		p.waiting = nil
		return nil
	case <-p.ctx.Done():
		return p.stopErr()
	}
}

// committer saves the groups' checkpoints in order, each once its batches
// are acknowledged, until the run closes the channel.
func (p *publisher) committer() error {
	for g := range p.groups {
		for _, b := range g.after {
			select {
			case <-b.done:
			case <-p.ctx.Done():
				return p.stopErr()
			}
			if b.err != nil {
				return b.err
			}
		}
		if err := p.cps.Save(p.ctx, g.cp); err != nil {
			return err
		}
		p.saved(g.cp)
	}
	return nil
}

// stopErr is the error a publisher stopped by its context returns: its
// first error, else the context's.
func (p *publisher) stopErr() error {
	select {
	case <-p.failed:
		return p.err
	default:
		return p.ctx.Err()
	}
}
