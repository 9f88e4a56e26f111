package capture

import (
	"context"
	"testing"
	"time"
)

// The silence watch cancels the reading once the reader has waited its
// limit for an event, and not while events arrive or while the reader
// waits for the publisher instead, however long.
func TestSilence(t *testing.T) {
	const limit = 200 * time.Millisecond
	watch := func(step func(*silence)) error {
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		var s silence
		go s.watch(ctx, cancel, limit)
		for range 8 { // twice the limit
			step(&s)
			time.Sleep(limit / 4)
		}
		return context.Cause(ctx)
	}
	if err := watch(func(s *silence) { s.waiting.Store(true) }); err == nil {
		t.Error("a reader waiting twice the limit for an event was not stopped")
	}
	if err := watch(func(s *silence) { s.waiting.Store(true); s.events.Add(1) }); err != nil {
		t.Errorf("a reader getting events was stopped: %v", err)
	}
	if err := watch(func(s *silence) { s.waiting.Store(false) }); err != nil {
		t.Errorf("a reader waiting for the publisher was stopped: %v", err)
	}
}
