package splitter

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/spool"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/schema"
)

// fixture is a splitter over real MariaDB and the real pipeline API.
type fixture struct {
	t     *testing.T
	s     *Splitter
	api   *pipeline.Client
	spool spool.Dir
	now   time.Time
}

func newFixture(t *testing.T, hold time.Duration) *fixture {
	inst := stacktest.MariaDB(t)
	stacktest.Database(t, inst, "splitter_db", schema.Splitter)
	api := stacktest.PipelineAPI(t, inst)
	f := &fixture{t: t, api: api, spool: spool.Dir(t.TempDir()), now: time.Date(2025, 10, 15, 18, 0, 0, 0, time.UTC)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.s = New(Config{Spool: f.spool, Shards: 2, PollInterval: 10 * time.Millisecond, ReturnHold: hold},
		stacktest.As(t, inst, "splitter", "splitter_db"), api, log, prometheus.NewRegistry())
	f.s.now = func() time.Time { return f.now }
	return f
}

// produce writes an events file registered for shards.
func (f *fixture) produce(stem string, shards []int, lines ...string) {
	f.t.Helper()
	ctx := context.Background()
	if _, err := f.api.Register(ctx, stem, shards, "test"); err != nil {
		f.t.Fatal(err)
	}
	w, err := spool.Create(f.spool.EventsFile(stem))
	if err != nil {
		f.t.Fatal(err)
	}
	w.WriteString(strings.Join(lines, "\n") + "\n")
	if err := w.Commit(); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.api.IngestDone(ctx, stem); err != nil {
		f.t.Fatal(err)
	}
}

// drain steps until there is nothing left to do.
func (f *fixture) drain() {
	f.t.Helper()
	for range 50 {
		busy, err := f.s.Step(context.Background())
		if err != nil {
			f.t.Fatal(err)
		}
		if !busy {
			return
		}
	}
	f.t.Fatal("the splitter never ran out of work")
}

// output lists "file:line" of the routed lines of stem for shard, and
// whether it exists.
func (f *fixture) output(stem string, shard int) string {
	f.t.Helper()
	var out []string
	err := spool.ReadLines(f.spool.SplitFile(stem, shard), spool.MaxLine, func(l spool.Line) error {
		var r event.Routed
		if err := json.Unmarshal(l.Bytes, &r); err != nil {
			return err
		}
		s := r.Src.File + ":" + itoa(r.Src.Line)
		if r.Orphan {
			s += " orphan"
		}
		out = append(out, s)
		return nil
	})
	if os.IsNotExist(err) {
		return "-"
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return strings.Join(out, " ")
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// A return whose purchase comes in a later file is held, then released into
// that file's output; one whose purchase never comes is sent as an orphan in
// a release file of the splitter's own once its hold is over, even when no
// producer's file follows.
func TestHeldReleasedAndOrphanedReturns(t *testing.T) {
	f := newFixture(t, time.Minute)
	f.produce("20251015180000", []int{0, 1}, returnLine(7), returnLine(8), purchaseLine(1, 4))
	f.drain()
	if a, b := f.output("20251015180000", 0), f.output("20251015180000", 1); a != "20251015180000:3" || b != "" {
		t.Fatalf("first file: shard 0 %q, shard 1 %q; want the purchase on 0 and both returns held", a, b)
	}
	f.produce("20251015180001", []int{0, 1}, purchaseLine(7, 5))
	f.drain()
	if got := f.output("20251015180001", 1); got != "20251015180001:1 20251015180000:1" {
		t.Fatalf("second file shard 1 = %q, want the purchase and the return held for it", got)
	}
	f.now = f.now.Add(2 * time.Minute) // the other return's hold is over, and no file comes
	f.drain()
	items, err := f.api.Queue(context.Background(), pipeline.StageShardWorker, -1, 10)
	if err != nil {
		t.Fatal(err)
	}
	release := ""
	for _, it := range items {
		if it.Filename != "20251015180000" && it.Filename != "20251015180001" {
			release = it.Filename
		}
	}
	if release == "" {
		t.Fatalf("no release file in the worker queue: %+v", items)
	}
	if got := f.output(release, 0); got != "20251015180000:2 orphan" {
		t.Errorf("release file %s shard 0 = %q, want the return of order 8 as an orphan (8 %% 2 = 0)", release, got)
	}
	file, err := f.api.File(context.Background(), release)
	if err != nil || file.Producer != pipeline.ReleaseProducer {
		t.Errorf("release file %s producer = %q (%v), want %q", release, file.Producer, err, pipeline.ReleaseProducer)
	}
	if busy, err := f.s.Step(context.Background()); busy || err != nil {
		t.Errorf("Step after everything was released = %v, %v; want nothing to do", busy, err)
	}
}

// Lines that once stopped the splitter or were lost: a held return with an
// invalid UTF-8 byte or deep nesting (stored as bytes), a line longer than
// the limit (set aside as malformed), and lines for a shard the producer did
// not register (the splitter registers it, so they are split too).
func TestOddLinesAreKeptOrSetAside(t *testing.T) {
	f := newFixture(t, time.Minute)
	bad := `{"event_type":3,"payload":{"order_id":9,"user_id":1,"good_id":1,"qty":1,"note":"` + "\xff" + `"},"ts":"2025-10-15 17:41:41.000"}`
	deep := `{"event_type":3,"payload":{"order_id":9,"user_id":1,"good_id":1,"qty":2,"x":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) +
		`},"ts":"2025-10-15 17:41:42.000"}`
	long := `{"event_type":1,"payload":{"order_id":1,"user_id":1,"shop_id":4,"good_id":1,"qty":1,"x":"` + strings.Repeat("x", spool.MaxEventLine) + `"}}`
	f.produce("20251015180000", []int{0}, bad, deep, long, purchaseLine(2, 4), purchaseLine(3, 5))
	f.drain()
	if got := f.output("20251015180000", 0); got != "20251015180000:4" {
		t.Errorf("shard 0 = %q, want the purchase of shop 4", got)
	}
	if got := f.output("20251015180000", 1); got != "20251015180000:5" {
		t.Errorf("shard 1 (not registered by the producer) = %q, want the purchase of shop 5", got)
	}
	var m Malformed
	b, _ := os.ReadFile(f.spool.MalformedFile("20251015180000"))
	if err := json.Unmarshal(b, &m); err != nil || m.Line != 3 || !strings.Contains(m.Reason, "longer than the limit") {
		t.Errorf("malformed file = %.200s (%v), want line 3 set aside for its length", b, err)
	}
	f.produce("20251015180001", []int{0, 1}, purchaseLine(9, 7))
	f.drain()
	if got := f.output("20251015180001", 1); got != "20251015180001:1 20251015180000:1 20251015180000:2" {
		t.Errorf("shard 1 of the next file = %q, want the purchase and both odd returns held for it", got)
	}
}
