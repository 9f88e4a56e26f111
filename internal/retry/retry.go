// Package retry is the one retry policy of shopledger's loops (consumers,
// stages, the cdc-producer, the pipeline client): exponential backoff with
// jitter, from cenkalti/backoff, so that many processes recovering from the
// same outage do not retry in step.
package retry

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Backoff hands out the waits between attempts: from First, growing 1.5×
// per failure up to Max, each randomised by ±50%.
type Backoff struct {
	b *backoff.ExponentialBackOff
}

// New returns a policy from first to max.
func New(first, max time.Duration) *Backoff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = first, max
	b.Reset()
	return &Backoff{b: b}
}

// Default is the policy of the loops: 100 ms to 5 s.
func Default() *Backoff { return New(100*time.Millisecond, 5*time.Second) }

// Next is the wait before the next attempt.
func (r *Backoff) Next() time.Duration { return r.b.NextBackOff() }

// Reset starts over after a success.
func (r *Backoff) Reset() { r.b.Reset() }

// Sleep waits d or until ctx ends, and reports whether ctx is still alive.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
