package main

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/shopledger/shopledger/cdc-producer/internal/replay"
)

// A replay's progress on stderr: on a terminal a bar of the range's binlog
// bytes with the rows, rows/s, position reached and time left, drawn by
// mpb; otherwise (a log, a pipe) a plain line every linesEvery.

const (
	barEvery   = 200 * time.Millisecond
	linesEvery = 5 * time.Second
)

// showProgress returns the display for w and how often to update it.
func showProgress(w io.Writer) (func(replay.Status), time.Duration) {
	if f, ok := w.(*os.File); ok {
		if width, _, err := term.GetSize(int(f.Fd())); err == nil && width >= 80 {
			return (&bar{out: f}).show, barEvery
		}
	}
	return replay.LinesTo(w), linesEvery
}

// bar draws the progress with mpb.
type bar struct {
	out  io.Writer
	p    *mpb.Progress
	b    *mpb.Bar
	last atomic.Pointer[replay.Status] // read by mpb's goroutine
}

func (b *bar) show(s replay.Status) {
	b.last.Store(&s)
	if b.b == nil {
		b.p = mpb.New(mpb.WithOutput(b.out), mpb.WithRefreshRate(barEvery), mpb.WithAutoRefresh())
		b.b = b.p.AddBar(max(s.Total, 1),
			mpb.PrependDecorators(decor.Name("replay", decor.WCSyncSpaceR), decor.Percentage(decor.WCSyncSpace)),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
				s := b.last.Load()
				return fmt.Sprintf("%d rows, %.0f rows/s, at %s:%d, left %s", s.Rows, s.RowsPerSecond, s.At.Name, s.At.Pos,
					s.Left.Round(time.Second))
			}, decor.WCSyncSpace)))
	}
	b.b.SetCurrent(min(s.Done, max(s.Total, 1)))
	if s.Finished {
		b.b.SetTotal(-1, true)
		b.p.Wait()
	}
}
