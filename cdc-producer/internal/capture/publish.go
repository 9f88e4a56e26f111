package capture

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// publisher writes to Kafka behind the binlog reader, so decoding goes on
// while Kafka acknowledges. It takes items in order: batches of messages
// and checkpoints. A checkpoint is saved only after every batch queued
// before it was acknowledged; checkpoints queued together collapse into
// the last one. The first error stops it; the reader then starts over from
// the last saved checkpoint.
type publisher struct {
	out   *kafka.Writer
	cps   *Checkpoints
	items chan item
	done  chan error // receives the publisher's end: nil after close, or its error
	saved func(Checkpoint)
	log   *slog.Logger

	closeOnce sync.Once
	closeErr  error
}

type item struct {
	msgs []kafka.Message
	cp   *Checkpoint
}

// queueDepth bounds the items in flight, and so the memory they hold.
const queueDepth = 4

// newPublisher starts a publisher; fail is called with its error if it
// stops on one.
func newPublisher(ctx context.Context, out *kafka.Writer, cps *Checkpoints, saved func(Checkpoint), log *slog.Logger,
	fail func(error)) *publisher {
	p := &publisher{out: out, cps: cps, items: make(chan item, queueDepth), done: make(chan error, 1), saved: saved, log: log}
	go func() {
		err := p.run(ctx)
		if err != nil && ctx.Err() == nil {
			fail(err)
		}
		p.done <- err
	}()
	return p
}

func (p *publisher) run(ctx context.Context) error {
	for it := range p.items {
		var msgs []kafka.Message
		var cp *Checkpoint
		take := func(it item) {
			msgs = append(msgs, it.msgs...)
			if it.cp != nil {
				cp = it.cp
			}
		}
		take(it)
	more: // what else is queued already goes in the same write, up to a queue's worth
		for range queueDepth - 1 {
			select {
			case it, ok := <-p.items:
				if !ok {
					break more
				}
				take(it)
			default:
				break more
			}
		}
		if len(msgs) > 0 {
			start := time.Now()
			if err := p.out.WriteMessages(ctx, msgs...); err != nil {
				return fmt.Errorf("publish %d messages: %w", len(msgs), err)
			}
			p.log.Debug("published", "messages", len(msgs), "took", time.Since(start))
		}
		if cp != nil {
			if err := p.cps.Save(ctx, *cp); err != nil {
				return err
			}
			p.saved(*cp)
		}
	}
	return nil
}

// send queues an item; it fails once the publisher has failed.
func (p *publisher) send(ctx context.Context, it item) error {
	select {
	case p.items <- it:
		return nil
	case err := <-p.done:
		p.done <- err
		if err == nil {
			err = fmt.Errorf("publisher closed")
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close waits until every queued item is written and returns the first
// error. Closing again returns the same.
func (p *publisher) close() error {
	p.closeOnce.Do(func() {
		close(p.items)
		p.closeErr = <-p.done
		p.done <- p.closeErr
	})
	return p.closeErr
}
