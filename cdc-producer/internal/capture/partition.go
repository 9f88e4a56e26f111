package capture

// A topic partition's record batches: the open one, the sealed ones in
// line, and the sender that sends them one after the other, in order,
// retrying what Kafka or the network call temporary and stopping at the
// first failure, so that a partition's last acknowledged batch vouches
// for every earlier one.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// partition is one topic partition's batches: the open one, the sealed
// ones waiting for their turn, and whether a sender is at work on them.
type partition struct {
	topic string
	id    int
	dirty bool // the run goroutine's

	mu      sync.Mutex
	open    *recordBatch
	queue   []*recordBatch
	sending bool
	last    *recordBatch // the newest batch, open or sealed
}

// sealLocked closes part's open batch to more records and queues it,
// starting a sender if part has none at work (which seals it: the
// compression and the checksum are the sender's work, beside the run
// goroutine's). part.mu is held.
func (p *publisher) sealLocked(part *partition) {
	b := part.open
	part.open = nil
	part.queue = append(part.queue, b)
	if !part.sending {
		part.sending = true
		p.senders.Add(1)
		go p.sender(part)
	}
}

// kick sends the open batches of the partitions with nothing in flight
// (all open batches if all).
func (p *publisher) kick(all bool) {
	for _, part := range p.all {
		part.mu.Lock()
		if part.open != nil && (all || !part.sending) {
			p.sealLocked(part)
		}
		part.mu.Unlock()
	}
}

// sender sends part's sealed batches one after the other; once its queue
// is empty it also takes the open batch, which filled while the last one
// was in flight.
func (p *publisher) sender(part *partition) {
	defer p.senders.Done()
	for {
		part.mu.Lock()
		if len(part.queue) == 0 && part.open != nil {
			part.queue = append(part.queue, part.open)
			part.open = nil
		}
		if len(part.queue) == 0 {
			part.sending = false
			part.mu.Unlock()
			return
		}
		b := part.queue[0]
		part.queue[0] = nil
		part.queue = part.queue[1:]
		part.mu.Unlock()
		var err error
		select {
		case <-p.failed:
			err = p.err // nothing is written past a failed batch
		default:
			b.seal(p.codec, p.bufs, p.zbufs)
			if err = p.produce(part, b); err != nil {
				p.setErr(err)
			}
		}
		b.err = err
		if b.zipped {
			p.zbufs.put(b.buf)
		} else {
			p.bufs.put(b.buf)
		}
		b.buf = nil
		close(b.done)
		<-p.slots
	}
}

// produce sends a sealed batch and returns once every in-sync replica has
// it, retrying what Kafka or the network call temporary.
func (p *publisher) produce(part *partition, b *recordBatch) error {
	wait := produceBackoff
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(p.ctx, produceTimeout)
		start := time.Now()
		res, err := p.client.RawProduce(ctx, &kafka.RawProduceRequest{Topic: part.topic, Partition: part.id,
			RequiredAcks: kafka.RequireAll, RawRecords: protocol.RawRecordSet{Reader: bytes.NewReader(b.buf)}})
		cancel()
		if err == nil && res != nil && res.Error != nil {
			err = res.Error
		}
		if err == nil {
			p.log.Debug("published", "topic", part.topic, "partition", part.id, "messages", b.n, "bytes", len(b.buf), "took", time.Since(start))
			return nil
		}
		if attempt == produceAttempts || !temporary(err) || p.ctx.Err() != nil {
			return fmt.Errorf("publish %d messages to %s partition %d (attempt %d): %w", b.n, part.topic, part.id, attempt, err)
		}
		p.log.Warn("publish failed; retrying", "topic", part.topic, "partition", part.id, "attempt", attempt, "retry_in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-p.ctx.Done():
		}
		wait = min(2*wait, time.Second)
	}
}

// temporary reports whether err may go away on a retry: what Kafka or the
// network call temporary, and a connection refused, reset or cut (as
// kafka-go's Writer decides).
func temporary(err error) bool {
	var t interface{ Temporary() bool }
	if errors.As(err, &t) && t.Temporary() {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
