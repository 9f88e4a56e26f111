package consume

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/retry"
	"github.com/shopledger/shopledger/internal/topics"
)

// A rebuild empties the consumer's state and consumes every change again,
// from each partition's first offset to its end when the rebuild started,
// through the same Decode and Apply as the group's members, then leaves
// the group's offsets at those ends for the members to go on from.
//
// It reads the partitions directly, not as a group member, and commits the
// group's offsets as an admin client does (generation -1), which the
// broker accepts only while the group has no members: a member started
// during the rebuild makes the next commit fail, and the rebuild stops
// (the member goes on from the offsets committed so far, exact thanks to
// the watermarks).
//
// Crash safety: the offsets are reset to the first offsets before the
// state is emptied, and the state, its watermarks and epochs are emptied
// in one transaction; each batch then commits its changes with their
// watermarks, and the offsets follow. So a rebuild killed at any point
// leaves a state that a member (or a second rebuild, which starts over)
// completes exactly: before the emptying, the members skip everything as
// applied; after it, they apply what the watermarks do not cover.

// Range is one partition's part of a rebuild: offsets [From, To).
type Range struct {
	Topic     string
	Partition int
	From, To  int64
}

// RebuildProgress is told how far a rebuild got. Its methods are called
// from one goroutine.
type RebuildProgress interface {
	// Begin lists the ranges to consume (empty ones included).
	Begin(ranges []Range)
	// Reached says that ranges[i] is applied up to offset next (the next
	// offset to read).
	Reached(i int, next int64)
	// End is called once the ranges are consumed, or the rebuild stops.
	End()
}

// RebuildOptions are a rebuild's choices.
type RebuildOptions struct {
	// Force rebuilds from topics that no longer start at offset 0 (see
	// ErrTruncated); the state then lacks the changes removed.
	Force bool
	// Progress receives the progress; nil for none.
	Progress RebuildProgress
}

// Rebuilt is what a rebuild (or a catch-up) did.
type Rebuilt struct {
	Ranges []Range
	Result
	Truncated []string // partitions that did not start at offset 0 (forced)
}

// Rebuild empties the state in db (h.Clear, the watermarks, the epochs and
// the record of replayed dead letters) and applies every change of
// cfg.Topics again through h, from the first offset of every partition to
// its end when Rebuild started. It returns ErrGroupActive while the group
// has members, and ErrTruncated when a partition no longer starts at
// offset 0, unless opt.Force.
//
// Dead letters: the rebuild sends the changes that still cannot be applied
// to the dead-letter topic again, and applies those that decode now; so
// the dead letters the topic held before are all out of date, and
// ReplayDeadLetters starts after them (consumer_dead_letter_start).
func Rebuild[C any](ctx context.Context, cfg Config, db *sql.DB, h Handler[C], opt RebuildOptions, log *slog.Logger) (Rebuilt, error) {
	g, err := stoppedGroup(ctx, cfg.Brokers, cfg.Group, cfg.Topics)
	if err != nil {
		return Rebuilt{}, err
	}
	cl, parts, start, end := g.cl, g.parts, g.start, g.end
	var out Rebuilt
	for _, p := range parts {
		if start[p] > 0 {
			out.Truncated = append(out.Truncated, fmt.Sprintf("%s starts at offset %d", p, start[p]))
		}
	}
	if len(out.Truncated) > 0 && !opt.Force {
		return out, fmt.Errorf("%w: %s; a state rebuilt from what is left would lack the changes removed (reconcile shows the difference); "+
			"rebuild --force does it anyway", ErrTruncated, strings.Join(out.Truncated, ", "))
	}
	if err := topics.Ensure(ctx, cfg.Brokers, cfg.DeadLetters.Changes(cfg.DeadLetterTopic)); err != nil {
		return out, fmt.Errorf("dead-letter topic: %w", err)
	}
	dlParts, err := partitions(ctx, cl, []string{cfg.DeadLetterTopic})
	if err != nil {
		return out, err
	}
	_, dlEnd, err := bounds(ctx, cl, dlParts)
	if err != nil {
		return out, err
	}
	// Offsets first, then the state: a crash in between leaves the full
	// state, which members consuming from the first offsets skip.
	if err := commit(ctx, cl, cfg.Group, start); err != nil {
		return out, err
	}
	if err := clearState(ctx, db, h, cfg.DeadLetterTopic, dlEnd); err != nil {
		return out, err
	}
	log.Info("state emptied; consuming every change again", "partitions", len(parts), "group", cfg.Group)
	for _, p := range parts {
		out.Ranges = append(out.Ranges, Range{Topic: p.topic, Partition: p.partition, From: start[p], To: end[p]})
	}
	res, err := consumeRanges(ctx, cfg, db, h, out.Ranges, opt.Progress, log)
	out.Result = res
	return out, err
}

// CatchUp applies, like a member of the group would, every change from the
// group's committed offsets (a partition's first offset when none) to the
// partitions' current ends, and commits the ends. It returns
// ErrGroupActive while the group has members.
func CatchUp[C any](ctx context.Context, cfg Config, db *sql.DB, h Handler[C], progress RebuildProgress, log *slog.Logger) (Rebuilt, error) {
	g, err := stoppedGroup(ctx, cfg.Brokers, cfg.Group, cfg.Topics)
	if err != nil {
		return Rebuilt{}, err
	}
	cl, parts, start, end := g.cl, g.parts, g.start, g.end
	current, err := committed(ctx, cl, cfg.Group, parts)
	if err != nil {
		return Rebuilt{}, err
	}
	var out Rebuilt
	for _, p := range parts {
		out.Ranges = append(out.Ranges, Range{Topic: p.topic, Partition: p.partition, From: max(current[p], start[p]), To: end[p]})
	}
	res, err := consumeRanges(ctx, cfg, db, h, out.Ranges, progress, log)
	out.Result = res
	return out, err
}

// clearState empties the state and its bookkeeping in one transaction, and
// records where the dead-letter topic ended.
func clearState[C any](ctx context.Context, db *sql.DB, h Handler[C], dlTopic string, dlEnd map[tp]int64) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("empty the state: %w", err)
	}
	defer tx.Rollback()
	if err := h.Clear(ctx, tx); err != nil {
		return fmt.Errorf("empty the state: %w", err)
	}
	for _, table := range []string{"consumer_watermark", "consumer_epoch", "consumer_replayed"} {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+table); err != nil {
			return fmt.Errorf("empty %s: %w", table, err)
		}
	}
	for p, off := range dlEnd {
		if _, err := tx.ExecContext(ctx, `INSERT INTO consumer_dead_letter_start (topic, kafka_partition, kafka_offset) VALUES (?, ?, ?)
			ON DUPLICATE KEY UPDATE kafka_offset = GREATEST(kafka_offset, VALUES(kafka_offset))`, dlTopic, p.partition, off); err != nil {
			return fmt.Errorf("record the dead letters' start: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("empty the state: %w", err)
	}
	return nil
}

// consumeRanges applies every message of ranges in batches, committing
// the group's offsets after each batch, and returns what the batches did.
func consumeRanges[C any](parent context.Context, cfg Config, db *sql.DB, h Handler[C], ranges []Range, progress RebuildProgress, log *slog.Logger) (Result, error) {
	if progress != nil {
		progress.Begin(ranges)
		defer progress.End()
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	index := map[tp]int{}
	msgs := make(chan kafka.Message, 4*cfg.BatchSize)
	var readers sync.WaitGroup
	var readErr error
	var once sync.Once
	for i, r := range ranges {
		index[tp{r.Topic, r.Partition}] = i
		if r.From >= r.To {
			continue
		}
		readers.Go(func() {
			if err := readRange(ctx, cfg, r, msgs); err != nil && ctx.Err() == nil {
				once.Do(func() { readErr = err; cancel() })
			}
		})
	}
	go func() { readers.Wait(); close(msgs) }()

	batches := make(chan *Batch[C], 1)
	go func() {
		defer close(batches)
		for {
			b := gather(ctx, msgs, cfg.BatchSize, cfg.BatchWait)
			if len(b) == 0 {
				return
			}
			select {
			case batches <- Decode(h, b):
			case <-ctx.Done():
				return
			}
		}
	}()

	dead := newDeadLetters(cfg, log)
	defer dead.close()
	cl := client(cfg.Brokers)
	var total Result
	wait := retry.Default()
	next := map[tp]int64{}
	for b := range batches {
		res, err := applyRetrying(ctx, db, h, b, dead, wait, log)
		if err != nil {
			break
		}
		total.add(res)
		for _, m := range b.msgs {
			p := tp{m.Topic, m.Partition}
			next[p] = m.Offset + 1
		}
		if err := commit(ctx, cl, cfg.Group, next); err != nil {
			once.Do(func() {
				readErr = fmt.Errorf("commit the rebuild's offsets: %w (the group's members go on from the offsets committed so far)", err)
				cancel()
			})
			break
		}
		if progress != nil {
			for p, off := range next {
				progress.Reached(index[p], off)
			}
		}
		clear(next)
	}
	cancel()
	for range batches { // let the decoder end
	}
	switch {
	case readErr != nil:
		return total, readErr
	case parent.Err() != nil:
		return total, fmt.Errorf("interrupted: %w", parent.Err())
	case !finished(ranges, total):
		return total, errors.New("the partitions' readers stopped before the ends")
	}
	return total, nil
}

// finished reports whether total handled every message of ranges.
func finished(ranges []Range, total Result) bool {
	n := 0
	for _, r := range ranges {
		n += int(max(0, r.To-r.From))
	}
	return total.Handled() >= n
}

// readRange sends the messages of r, in order, until the one before r.To.
// The change topics hold no transaction markers, so the offsets of a
// partition follow each other and the one before r.To is a message.
func readRange(ctx context.Context, cfg Config, r Range, out chan<- kafka.Message) error {
	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: cfg.Brokers, Topic: r.Topic, Partition: r.Partition,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 250 * time.Millisecond, QueueCapacity: cfg.BatchSize,
		ErrorLogger: kafka.LoggerFunc(func(string, ...any) {})})
	defer rd.Close()
	if err := rd.SetOffset(r.From); err != nil {
		return fmt.Errorf("%s[%d]: %w", r.Topic, r.Partition, err)
	}
	for {
		m, err := rd.FetchMessage(ctx)
		if err != nil {
			return fmt.Errorf("read %s[%d]: %w", r.Topic, r.Partition, err)
		}
		if m.Offset >= r.To {
			return nil
		}
		select {
		case out <- m:
		case <-ctx.Done():
			return ctx.Err()
		}
		if m.Offset+1 >= r.To {
			return nil
		}
	}
}

// gather waits for one message, then takes more for up to wait, at most
// size; it returns nothing once in is closed and empty or ctx ended.
func gather(ctx context.Context, in <-chan kafka.Message, size int, wait time.Duration) []kafka.Message {
	var b []kafka.Message
	select {
	case m, ok := <-in:
		if !ok {
			return nil
		}
		b = append(b, m)
	case <-ctx.Done():
		return nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for len(b) < size {
		select {
		case m, ok := <-in:
			if !ok {
				return b
			}
			b = append(b, m)
		case <-timer.C:
			return b
		case <-ctx.Done():
			return b
		}
	}
	return b
}

// applyRetrying applies b, retrying with backoff until it succeeds or ctx
// ends.
func applyRetrying[C any](ctx context.Context, db *sql.DB, h Handler[C], b *Batch[C], dead *deadLetters, wait *retry.Backoff, log *slog.Logger) (Result, error) {
	for {
		res, err := Apply(ctx, db, h, b, dead)
		if err == nil {
			wait.Reset()
			return res, nil
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		d := wait.Next()
		first := b.msgs[0]
		log.Warn("apply failed; retrying", "batch", len(b.msgs), "from", fmt.Sprintf("%s[%d]@%d", first.Topic, first.Partition, first.Offset), "err", err, "retry_in", d)
		retry.Sleep(ctx, d)
	}
}
