package capture

// The publisher: Kafka behind the binlog reader, so that decoding goes on
// while Kafka acknowledges. It takes items in order, batches of messages
// and checkpoints; it lays each message into the record batch of its
// topic partition (batch.go), chosen as kafka-go's Writer with the
// Murmur2Balancer chooses it (Kafka's own clients' partitioner), and each
// partition's sender sends its batches one at a time, in order,
// acknowledged by every in-sync replica (partition.go). Within a
// transaction batches fill while their partition has one in flight; a
// partition with nothing in flight sends as soon as the reader has
// nothing more queued.
//
// At a checkpoint it sends what is open and waits until the last batch of
// each partition written to since the last checkpoint is acknowledged
// (which vouches for the earlier ones: a sender stops at its first
// failure), then saves the checkpoint; checkpoints queued right after it,
// with no message between, supersede it. Only then does it take the next
// transaction's messages: a crash repeats at most the one transaction
// whose checkpoint was not saved. The first error stops it; the reader
// then starts over from the last saved checkpoint.

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
	cp     *Checkpoint
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
	bufs    batchBufs            // records
	zbufs   batchBufs            // compressed records
	senders sync.WaitGroup
	stopped chan struct{} // closed once every goroutine returned

	errOnce   sync.Once
	err       error
	failed    chan struct{} // closed once err is set
	closeOnce sync.Once

	// The run goroutine's.
	look     *item // taken from the queue, not yet handled
	balancer kafka.Murmur2Balancer
	topics   map[string]*topicParts
	all      []*partition
	dirty    []*partition // written to since the last checkpoint
}

// topicParts are a topic's partitions.
type topicParts struct {
	parts   []*partition
	ids     []int // 0..len(parts)-1, for the balancer
	checked time.Time
}

// newPublisher starts a publisher on client; fail is called with its error
// if it stops on one while ctx is live. codec compresses the batches (nil:
// none); the items' arena chunks go back to chunks (nil: nowhere).
func newPublisher(ctx context.Context, client *kafka.Client, codec kafka.CompressionCodec, cps *Checkpoints, chunks chan []byte,
	saved func(Checkpoint), log *slog.Logger, fail func(error)) *publisher {
	p := &publisher{client: client, codec: codec, cps: cps, chunks: chunks, saved: saved, log: log, parent: ctx, fail: fail,
		items: make(chan item, queueDepth), free: make(chan []kafka.Message, queueDepth+2),
		slots: make(chan struct{}, maxBatches), bufs: make(batchBufs, maxBatches), zbufs: make(batchBufs, maxBatches),
		stopped: make(chan struct{}),
		failed:  make(chan struct{}), topics: map[string]*topicParts{}}
	p.ctx, p.cancel = context.WithCancel(ctx)
	go func() {
		if err := p.run(); err != nil {
			p.setErr(err)
		}
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

// run lays the queued messages into batches and saves the checkpoints,
// until the queue is closed.
func (p *publisher) run() error {
	defer p.kick(true) // on close: whatever is open goes out
	for {
		it, ok := p.next(true)
		if !ok {
			return p.ctx.Err()
		}
		if err := p.take(it); err != nil {
			return err
		}
		if len(p.items) == 0 {
			p.kick(false) // the reader has nothing more: what is open goes out where nothing is in flight
		}
	}
}

// next returns the next item: the one looked at last, else one from the
// queue, waiting for it only if block; false once the queue is closed
// (or empty, unless block) or the publisher stopped.
func (p *publisher) next(block bool) (item, bool) {
	if p.look != nil {
		it := *p.look
		p.look = nil
		return it, true
	}
	if !block {
		select {
		case it, ok := <-p.items:
			return it, ok
		default:
			return item{}, false
		}
	}
	select {
	case it, ok := <-p.items:
		return it, ok
	case <-p.ctx.Done():
		return item{}, false
	}
}

// take lays an item's messages into batches, or queues its checkpoint.
func (p *publisher) take(it item) error {
	if it.cp != nil {
		return p.checkpoint(*it.cp)
	}
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

// checkpoint sends the open batches, waits until the last batch of each
// partition written to since the last checkpoint is acknowledged, and
// saves cp, or the last of the checkpoints queued right after it.
func (p *publisher) checkpoint(cp Checkpoint) error {
	after := make([]*recordBatch, 0, len(p.dirty))
	for _, part := range p.dirty {
		part.mu.Lock()
		if part.last != nil {
			after = append(after, part.last)
		}
		part.mu.Unlock()
		part.dirty = false
	}
	p.dirty = p.dirty[:0]
	p.kick(true)
	for _, b := range after {
		select {
		case <-b.done:
		case <-p.ctx.Done():
			return p.stopErr()
		}
		if b.err != nil {
			return b.err
		}
	}
	// Checkpoints queued meanwhile with no message between supersede it.
	for {
		nx, ok := p.next(false)
		if !ok {
			break
		}
		if nx.cp == nil {
			p.look = &nx
			break
		}
		cp = *nx.cp
	}
	if err := p.cps.Save(p.ctx, cp); err != nil {
		return err
	}
	p.saved(cp)
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
