package service

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/shopledger/shopledger/internal/consume"
)

// A rebuild's progress on stderr: on a terminal, a bar per partition (offset
// reached of the end, changes/s, ETA) and one for all of them, drawn by
// mpb; otherwise (a log, a pipe) a plain line per unfinished partition and
// one for all every plainEvery.

// plainEvery is how often the plain display prints.
const plainEvery = 5 * time.Second

// newProgress returns the display for f: bars when it is a terminal wide
// enough to draw them.
func newProgress(f *os.File) consume.RebuildProgress {
	if w, _, err := term.GetSize(int(f.Fd())); err == nil && w >= 80 {
		return &bars{out: f}
	}
	return &lines{out: f, every: plainEvery}
}

// bars draws a bar per non-empty partition and a total.
type bars struct {
	out    io.Writer
	p      *mpb.Progress
	ranges []consume.Range
	bar    []*mpb.Bar // per range; nil for an empty one
	total  *mpb.Bar
	sum    int64
}

func (b *bars) Begin(ranges []consume.Range) {
	b.ranges = ranges
	b.p = mpb.New(mpb.WithOutput(b.out), mpb.WithWidth(32), mpb.WithRefreshRate(200*time.Millisecond))
	b.bar = make([]*mpb.Bar, len(ranges))
	var all int64
	for i, r := range ranges {
		n := r.To - r.From
		if n <= 0 {
			continue
		}
		all += n
		b.bar[i] = b.p.AddBar(n, barDecor(fmt.Sprintf("%s[%d]", r.Topic, r.Partition), r.From)...)
	}
	b.total = b.p.AddBar(all, barDecor("all partitions", 0)...)
	b.total.SetPriority(len(ranges) + 1) // last
}

// barDecor shows a name, the offset reached of the end (the bar counts
// from 0, the offsets from from), changes/s and the ETA.
func barDecor(name string, from int64) []mpb.BarOption {
	return []mpb.BarOption{
		mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR),
			decor.Any(func(s decor.Statistics) string {
				return fmt.Sprintf("%d / %d", from+s.Current, from+s.Total)
			}, decor.WCSyncSpaceR)),
		// Averages since the start: a partition's batches come in bursts
		// between the other partitions', too unevenly for a moving average.
		mpb.AppendDecorators(decor.OnComplete(decor.AverageSpeed(nil, "%.0f changes/s", decor.WCSyncSpace), ""),
			decor.OnComplete(decor.AverageETA(decor.ET_STYLE_GO, decor.WCSyncSpace), " done")),
	}
}

func (b *bars) Reached(i int, next int64) {
	bar := b.bar[i]
	if bar == nil {
		return
	}
	cur := next - b.ranges[i].From
	b.sum += cur - bar.Current()
	bar.SetCurrent(cur)
	b.total.SetCurrent(b.sum)
}

func (b *bars) End() {
	for _, bar := range append(b.bar, b.total) {
		if bar != nil && !bar.Completed() {
			bar.Abort(false)
		}
	}
	b.p.Wait()
}

// lines prints the progress as plain lines every so often.
type lines struct {
	out    io.Writer
	every  time.Duration
	mu     sync.Mutex
	ranges []consume.Range
	next   []int64
	prev   []int64 // at the last print
	start  time.Time
	stop   chan struct{}
	done   chan struct{}
}

func (l *lines) Begin(ranges []consume.Range) {
	l.ranges, l.start = ranges, time.Now()
	l.next, l.prev = make([]int64, len(ranges)), make([]int64, len(ranges))
	for i, r := range ranges {
		l.next[i], l.prev[i] = r.From, r.From
	}
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(l.done)
		t := time.NewTicker(l.every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				l.print(l.every)
			case <-l.stop:
				return
			}
		}
	}()
}

func (l *lines) Reached(i int, next int64) {
	l.mu.Lock()
	l.next[i] = next
	l.mu.Unlock()
}

func (l *lines) End() {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for i, r := range l.ranges {
		n += l.next[i] - r.From
	}
	took := time.Since(l.start)
	fmt.Fprintf(l.out, "rebuild: %d changes consumed in %s (%.0f changes/s)\n", n, took.Round(time.Millisecond), float64(n)/max(took.Seconds(), 1e-3))
}

// print writes a line per unfinished partition and one for all.
func (l *lines) print(since time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var done, all, moved int64
	for i, r := range l.ranges {
		n := r.To - r.From
		got := l.next[i] - r.From
		step := l.next[i] - l.prev[i]
		l.prev[i] = l.next[i]
		done, all, moved = done+got, all+n, moved+step
		if got < n {
			fmt.Fprintf(l.out, "rebuild: %s[%d] %d / %d %s\n", r.Topic, r.Partition, l.next[i], r.To, rateETA(step, n-got, since))
		}
	}
	fmt.Fprintf(l.out, "rebuild: all partitions %d / %d changes %s\n", done, all, rateETA(moved, all-done, since))
}

// rateETA renders "(x%) changes/s, ETA" from step changes in since with
// left to go.
func rateETA(step, left int64, since time.Duration) string {
	rate := float64(step) / since.Seconds()
	eta := "ETA unknown"
	if rate > 0 {
		eta = "ETA " + time.Duration(float64(left)/rate*float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("%.0f changes/s, %s", rate, eta)
}
