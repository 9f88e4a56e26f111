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
// before it was acknowledged; consecutive checkpoints collapse into the
// last one. The first error stops it; the reader then starts over from the
// last saved checkpoint.
type publisher struct {
	out   *kafka.Writer
	cps   *Checkpoints
	items chan item
	done  chan error // receives the publisher's end: nil after close, or its error
	saved func(Checkpoint)
	log   *slog.Logger
	look  *item // taken from the queue, not yet handled (run's goroutine only)

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
	for {
		it, ok := p.next(true)
		if !ok {
			return nil
		}
		// The messages of one transaction, however many items they came
		// in, up to a queue's worth; never past its checkpoint, so that a
		// crash leaves at most one transaction written but unacknowledged.
		var msgs []kafka.Message
		var cp *Checkpoint
		for n := 1; ; n++ {
			msgs = append(msgs, it.msgs...)
			if it.cp != nil {
				cp = it.cp
				break
			}
			if n == queueDepth {
				break
			}
			if it, ok = p.next(false); !ok {
				break
			}
		}
		// Checkpoints queued right after, with no message between, supersede it.
		for cp != nil {
			nx, ok := p.next(false)
			if !ok {
				break
			}
			if nx.cp == nil || len(nx.msgs) > 0 {
				p.look = &nx
				break
			}
			cp = nx.cp
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
}

// next returns the next item: the one looked at last time, else one from
// the queue, waiting for it only if block.
func (p *publisher) next(block bool) (item, bool) {
	if p.look != nil {
		it := *p.look
		p.look = nil
		return it, true
	}
	if block {
		it, ok := <-p.items
		return it, ok
	}
	select {
	case it, ok := <-p.items:
		return it, ok
	default:
		return item{}, false
	}
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
