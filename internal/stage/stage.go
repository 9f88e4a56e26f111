// Package stage is what the pipeline's task stages (the splitter, the
// shard workers) share: the work loop (call step until the context ends,
// at once again while it finds work, after a pause when it finds none or
// fails; failures are logged and retried, a stage decides for itself which
// of them end a task as failed) and the claims on tasks.
package stage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/retry"
)

// Step does one unit of work and reports whether it found any.
type Step func(ctx context.Context) (busy bool, err error)

// Run calls step until ctx ends: at once again while it finds work, after
// idle when it finds none, and after a growing, jittered wait (the one
// retry policy, package retry) while it fails: a database or the pipeline
// API away, a full disk.
func Run(ctx context.Context, idle time.Duration, log *slog.Logger, step Step) error {
	wait := retry.New(max(idle, 100*time.Millisecond), 10*time.Second)
	for ctx.Err() == nil {
		busy, err := step(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			d := wait.Next()
			log.Error("step failed; will retry", "err", err, "retry_in", d)
			retry.Sleep(ctx, d)
		case busy:
			wait.Reset()
		default:
			wait.Reset()
			retry.Sleep(ctx, idle)
		}
	}
	return nil
}

// Claims take a stage's tasks through the pipeline API on behalf of one
// owner, a name that stays the same across restarts (shard-worker-0, say,
// which its writer lock keeps unique). The pipeline API is the only claim
// journal: a start is idempotent for its owner, so a start whose answer was
// lost is simply retried, and a restarted owner finds the tasks it had
// started with Started.
type Claims struct {
	API   *pipeline.Client
	Owner string
	Log   *slog.Logger
}

// Started lists up to limit tasks of stage this owner started and has not
// finished, oldest first (shard < 0: every shard).
func (c Claims) Started(ctx context.Context, stage pipeline.Stage, shard, limit int) ([]pipeline.QueueItem, error) {
	return c.API.Started(ctx, stage, c.Owner, shard, limit)
}

// Claim starts stage of (file, shard) for this owner. It reports false
// without error when someone else holds the task or it moved on.
func (c Claims) Claim(ctx context.Context, stage pipeline.Stage, file string, shard int) (bool, error) {
	_, err := c.API.Transition(ctx, stage, pipeline.TransitionStart, file, shard, c.Owner)
	if errors.Is(err, pipeline.ErrConflict) {
		c.Log.Warn("task taken by someone else", "stage", stage, "file", file, "shard", shard, "err", err)
		return false, nil
	}
	return err == nil, err
}

// Finish ends stage of (file, shard) with done, or with fail when failed.
func (c Claims) Finish(ctx context.Context, stage pipeline.Stage, file string, shard int, failed bool) error {
	t := pipeline.TransitionDone
	if failed {
		t = pipeline.TransitionFail
	}
	if _, err := c.API.Transition(ctx, stage, t, file, shard, c.Owner); err != nil {
		return fmt.Errorf("%s %s shard %d: mark %s: %w", stage, file, shard, t, err)
	}
	return nil
}
