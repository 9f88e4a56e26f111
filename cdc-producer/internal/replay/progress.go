package replay

import (
	"fmt"
	"io"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// span measures how far into the plan's range a position is, in binlog
// bytes.
type span struct {
	before map[string]int64 // bytes of the range's files before each file
	total  int64
}

func newSpan(p *Plan) span {
	s := span{before: map[string]int64{}}
	for _, f := range p.Files {
		s.before[f.Name] = s.total
		s.total += f.Size
	}
	if p.To.Kind == AtPosition {
		if b, ok := s.before[p.To.Pos.Name]; ok {
			s.total = min(s.total, b+int64(p.To.Pos.Pos))
		}
	}
	return s
}

func (s span) done(at mysql.Position) int64 {
	return min(s.before[at.Name]+int64(at.Pos), s.total)
}

// Progress reports a replay's progress: rows read, rows/s, the position
// reached, the share of the range's binlog bytes read and the time left.
type Progress struct {
	span  span
	start time.Time
	show  func(p Status)
	every time.Duration
	last  time.Time
	at    mysql.Position
	rows  int
}

// Status is one report of a replay's progress.
type Status struct {
	At             mysql.Position
	Rows           int
	Done, Total    int64 // binlog bytes
	Elapsed, Left  time.Duration
	RowsPerSecond  float64
	Finished       bool
	BytesPerSecond float64
}

// NewProgress reports on plan's range to show, at most once per every.
func NewProgress(plan *Plan, every time.Duration, show func(Status)) *Progress {
	return &Progress{span: newSpan(plan), start: time.Now(), show: show, every: every}
}

// At records the position reached and the rows read so far.
func (p *Progress) At(at mysql.Position, rows int) {
	p.at, p.rows = at, rows
	if now := time.Now(); now.Sub(p.last) >= p.every {
		p.last = now
		p.show(p.status(false))
	}
}

// Finish reports the end.
func (p *Progress) Finish() { p.show(p.status(true)) }

func (p *Progress) status(finished bool) Status {
	s := Status{At: p.at, Rows: p.rows, Done: p.span.done(p.at), Total: p.span.total, Elapsed: time.Since(p.start), Finished: finished}
	if secs := s.Elapsed.Seconds(); secs > 0 {
		s.RowsPerSecond = float64(s.Rows) / secs
		s.BytesPerSecond = float64(s.Done) / secs
	}
	if s.BytesPerSecond > 0 && s.Total > s.Done {
		s.Left = time.Duration(float64(s.Total-s.Done) / s.BytesPerSecond * float64(time.Second))
	}
	return s
}

// LinesTo writes each status as one plain line, for logs and pipes.
func LinesTo(w io.Writer) func(Status) {
	return func(s Status) {
		pct := 100.0
		if s.Total > 0 {
			pct = 100 * float64(s.Done) / float64(s.Total)
		}
		state := "replaying"
		if s.Finished {
			state = "replayed"
		}
		fmt.Fprintf(w, "%s: %d rows (%.0f/s), at %s:%d, %.1f%% of %s, elapsed %s, left %s\n", state, s.Rows, s.RowsPerSecond,
			s.At.Name, s.At.Pos, pct, bytes(s.Total), s.Elapsed.Round(time.Second), s.Left.Round(time.Second))
	}
}

func bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
