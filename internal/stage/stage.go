// Package stage runs a pipeline stage's work loop: call step until the
// context ends, at once again while it finds work, after a pause when it
// finds none or fails. Failures are logged and retried; a stage decides for
// itself which of them end a task as failed.
package stage

import (
	"context"
	"log/slog"
	"time"
)

// Step does one unit of work and reports whether it found any.
type Step func(ctx context.Context) (busy bool, err error)

// Run calls step until ctx ends, pausing idle between idle or failed steps.
func Run(ctx context.Context, idle time.Duration, log *slog.Logger, step Step) error {
	for ctx.Err() == nil {
		busy, err := step(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error("step failed; will retry", "err", err)
		}
		if busy && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(idle):
		}
	}
	return nil
}
