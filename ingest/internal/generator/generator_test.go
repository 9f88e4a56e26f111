package generator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/eventgen"
	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/spool"
)

// recorder stands in for the pipeline API and checks the producer's side of
// the contract: register before the file exists, done after it is complete.
type recorder struct {
	t        *testing.T
	dir      spool.Dir
	mu       sync.Mutex
	calls    []string
	failNext int // answer 500 to this many calls first
	// loseRegisters registers and then answers 500, as if the answer
	// were lost, to this many registers first.
	loseRegisters int
	producers     map[string]string // stem -> producer, of the stems registered
	done          map[string]bool
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failNext > 0 {
		r.failNext--
		http.Error(w, `{"error":"try later"}`, http.StatusInternalServerError)
		return
	}
	if name, ok := strings.CutPrefix(req.URL.Path, "/files/"); ok && req.Method == http.MethodGet {
		p, ok := r.producers[name]
		if !ok {
			http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
			return
		}
		st := pipeline.StatusStarted
		if r.done[name] {
			st = pipeline.StatusDone
		}
		json.NewEncoder(w).Encode(pipeline.FileResponse{Filename: name, Producer: p,
			Shards: []pipeline.ShardStatus{{Shard: 0, EventIngestStatus: st}, {Shard: 1, EventIngestStatus: st}}})
		return
	}
	var body map[string]any
	json.NewDecoder(req.Body).Decode(&body)
	name, _ := body["filename"].(string)
	_, statErr := os.Stat(r.dir.EventsFile(name))
	switch req.URL.Path {
	case "/files/register":
		if statErr == nil {
			r.t.Errorf("register %s after the file was written", name)
		}
		if s, _ := json.Marshal(body["shards"]); string(s) != "[0,1]" {
			r.t.Errorf("register %s shards = %s, want [0,1]", name, s)
		}
		if r.producers == nil {
			r.producers = map[string]string{}
		}
		r.producers[name], _ = body["producer"].(string)
		if r.loseRegisters > 0 {
			r.loseRegisters--
			r.calls = append(r.calls, req.URL.Path+" "+name+" (answer lost)")
			http.Error(w, `{"error":"connection reset"}`, http.StatusBadGateway)
			return
		}
	case "/stages/event-ingest/done":
		if statErr != nil {
			r.t.Errorf("done %s before the file was complete: %v", name, statErr)
		}
		if r.done == nil {
			r.done = map[string]bool{}
		}
		r.done[name] = true
	}
	r.calls = append(r.calls, req.URL.Path+" "+name)
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{}`)
}

func newGenerator(t *testing.T, rec *recorder, cfg Config) (*Generator, string) {
	t.Helper()
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	cfg.Spool, cfg.Shards = rec.dir, 2
	cfg.World = eventgen.World{Shops: 5, Goods: 5, Users: 10}
	api := pipeline.NewClient(pipeline.ClientConfig{URL: srv.URL, Backoff: 10 * time.Millisecond})
	g, err := New(cfg, api, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(cfg.Spool.EventsDir(), 0o755)
	return g, srv.URL
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestTickWritesAFileWithinTheBatchRule(t *testing.T) {
	rec := &recorder{t: t, dir: spool.Dir(t.TempDir()), failNext: 1}
	g, _ := newGenerator(t, rec, Config{Interval: time.Second, EventsPerBatch: 50, MaxBatchSize: 20, Seed: 3,
		MaxPayloadSize: 1 << 20, ValidationTimeout: time.Second})
	start := time.Date(2025, 10, 15, 17, 41, 40, 0, time.UTC)
	sizes := map[int]bool{}
	for i := range 30 {
		tick := start.Add(time.Duration(i) * time.Second)
		if err := g.Tick(context.Background(), tick); err != nil {
			t.Fatal(err)
		}
		lines := readLines(t, rec.dir.EventsFile(tick.Format("20060102150405")))
		if len(lines) < 1 || len(lines) > 20 {
			t.Fatalf("tick %s wrote %d events, want 1..min(50, 20)", tick, len(lines))
		}
		sizes[len(lines)] = true
		for n, l := range lines {
			if _, err := event.ParseHead([]byte(l)); err != nil {
				t.Fatalf("line %d of tick %s: %v", n+1, tick, err)
			}
		}
	}
	if len(sizes) < 5 {
		t.Errorf("30 files had only %d distinct sizes: the count is not drawn from 1..20", len(sizes))
	}
	if got := len(rec.calls); got != 60 {
		t.Errorf("%d pipeline calls, want a register and a done per file (60)", got)
	}
	if st := g.snapshot(); st.FilesWritten != 30 || st.RegisterFailures != 0 {
		t.Errorf("stats = %+v, want 30 files and the 500 retried away", st)
	}
	if err := g.Tick(context.Background(), start); err == nil {
		t.Error("a second tick for an existing file must be refused")
	}
}

func TestRunAlignsTicksAndStops(t *testing.T) {
	rec := &recorder{t: t, dir: spool.Dir(t.TempDir())}
	g, _ := newGenerator(t, rec, Config{Interval: time.Second, EventsPerBatch: 3, MaxBatchSize: 3, MaxFiles: 2,
		MaxPayloadSize: 1 << 20, ValidationTimeout: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Run(ctx); err != nil {
		t.Fatal(err)
	}
	names, _ := os.ReadDir(rec.dir.EventsDir())
	var stems []time.Time
	for _, n := range names {
		stem := spool.StemOf(n.Name())
		ts, err := time.Parse("20060102150405", stem)
		if err != nil {
			t.Fatalf("file %s is not named <YYYYMMDDHHMMSS>.event-ingest.txt", n.Name())
		}
		stems = append(stems, ts)
	}
	if len(stems) != 2 || stems[1].Sub(stems[0]) != time.Second {
		t.Errorf("files %v, want two on consecutive second boundaries", stems)
	}
}

func TestPostedEventsGoIntoTheNextFile(t *testing.T) {
	rec := &recorder{t: t, dir: spool.Dir(t.TempDir())}
	g, _ := newGenerator(t, rec, Config{Interval: time.Second, EventsPerBatch: 5, MaxBatchSize: 5,
		MaxPayloadSize: 400, ValidationTimeout: time.Second})
	post := func(body string) int {
		rr := httptest.NewRecorder()
		g.PostHandler(rr, httptest.NewRequest(http.MethodPost, "/api/v1/events", strings.NewReader(body)))
		return rr.Code
	}
	good := `{"event_type":4,"payload":{"shop_id":9,"active":false},"ts":"2025-10-15 17:41:40.000"}`
	if code := post(good); code != http.StatusAccepted {
		t.Fatalf("POST valid event = %d, want 202", code)
	}
	for body, want := range map[string]int{
		`{"event_type":4,"payload":{"shop_id":9},"ts":"2025-10-15 17:41:40.000"}`: 400,
		`{"event_type":`: 400,
		"[" + strings.Repeat(good+",", 5) + good + "]": 413,
		`[]`:    400, // found by schemathesis: an empty list was "accepted", 0 events
		` [ ] `: 400,
	} {
		if code := post(body); code != want {
			t.Errorf("POST %.40s... = %d, want %d", body, code, want)
		}
	}
	tick := time.Date(2025, 10, 15, 17, 41, 41, 0, time.UTC)
	if err := g.Tick(context.Background(), tick); err != nil {
		t.Fatal(err)
	}
	if lines := readLines(t, rec.dir.EventsFile("20251015174141")); lines[0] != good {
		t.Errorf("first line of the next file = %s, want the posted event", lines[0])
	}
}

// A 202 means the events are on disk: a generator that dies before its
// next tick (nothing of it survives but its folder) loses none of them;
// the next generator on the same folder writes them into its first file,
// and the queue is empty afterwards.
func TestPostedEventsSurviveACrash(t *testing.T) {
	rec := &recorder{t: t, dir: spool.Dir(t.TempDir())}
	cfg := Config{Interval: time.Second, EventsPerBatch: 3, MaxBatchSize: 3, MaxPayloadSize: 1 << 20, ValidationTimeout: time.Second}
	first, _ := newGenerator(t, rec, cfg)
	var posted []string
	for i := range 4 {
		ev := fmt.Sprintf(`{"event_type":4,"payload":{"shop_id":%d,"active":true},"ts":"2025-10-15 17:41:40.000"}`, i)
		rr := httptest.NewRecorder()
		first.PostHandler(rr, httptest.NewRequest(http.MethodPost, "/api/v1/events", strings.NewReader(ev)))
		if rr.Code != http.StatusAccepted {
			t.Fatalf("POST = %d %s, want 202", rr.Code, rr.Body)
		}
		posted = append(posted, ev)
	}
	second, _ := newGenerator(t, rec, cfg) // the first is gone without a tick
	var got []string
	for i, stem := range []string{"20251015174141", "20251015174142"} {
		if err := second.Tick(context.Background(), time.Date(2025, 10, 15, 17, 41, 41+i, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
		for _, l := range readLines(t, rec.dir.EventsFile(stem)) {
			if strings.Contains(l, `"ts":"2025-10-15 17:41:40.000"`) {
				got = append(got, l)
			}
		}
	}
	if strings.Join(got, "\n") != strings.Join(posted, "\n") {
		t.Errorf("posted events in the files after a crash:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(posted, "\n"))
	}
	if left, _ := os.ReadDir(rec.dir.IngestQueueDir()); len(left) != 0 {
		t.Errorf("%d queue files left after the events were written", len(left))
	}
}

// A file of another producer's is never overwritten, even when it appears
// between the tick's check and its commit.
func TestTickNeverOverwritesAFile(t *testing.T) {
	rec := &recorder{t: t, dir: spool.Dir(t.TempDir())}
	g, _ := newGenerator(t, rec, Config{Interval: time.Second, EventsPerBatch: 3, MaxBatchSize: 3, MaxPayloadSize: 1 << 20, ValidationTimeout: time.Second})
	path := rec.dir.EventsFile("20251015174141")
	gw, err := spool.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	gw.WriteString("theirs\n")
	if err := os.WriteFile(path, []byte("theirs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := gw.CommitNew(); !errors.Is(err, spool.ErrExists) {
		t.Errorf("CommitNew over an existing file = %v, want ErrExists", err)
	}
	if err := g.Tick(context.Background(), time.Date(2025, 10, 15, 17, 41, 41, 0, time.UTC)); err == nil {
		t.Error("Tick onto an existing file = nil, want an error")
	}
	if b, _ := os.ReadFile(path); string(b) != "theirs\n" {
		t.Errorf("the other producer's file now holds %q", b)
	}
}

// A register that went through but whose answer was lost, and one left by
// a crash before the file was written (its marker on disk), are settled at
// the next tick: each gets an empty events file and its ingest done, so
// that the file goes through every stage; a marker of a stem the API does
// not know, or knows as another producer's, is dropped with no file.
func TestRegistrationsLeftWithoutAFile(t *testing.T) {
	rec := &recorder{t: t, dir: spool.Dir(t.TempDir()), loseRegisters: 1000, producers: map[string]string{}} // beyond the client's retries
	g, _ := newGenerator(t, rec, Config{Interval: time.Second, EventsPerBatch: 3, MaxBatchSize: 3, MaxPayloadSize: 1 << 20,
		ValidationTimeout: time.Second, Producer: "ingest"})
	at := func(sec int) time.Time { return time.Date(2025, 10, 15, 17, 41, sec, 0, time.UTC) }
	ctx := context.Background()
	if err := g.Tick(ctx, at(1)); err == nil {
		t.Fatal("Tick with the register's answer lost = nil, want an error")
	}
	rec.mu.Lock()
	rec.loseRegisters = 0
	rec.mu.Unlock()
	// What a crash right after the register leaves, and two markers of
	// stems not ours.
	for stem, producer := range map[string]string{"20251015174100": "ingest", "20251015174059": "someone-else"} {
		rec.producers[stem] = producer
		if err := g.mark(stem); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.mark("20251015174058"); err != nil {
		t.Fatal(err)
	}
	if err := g.Tick(ctx, at(2)); err != nil {
		t.Fatal(err)
	}
	for _, stem := range []string{"20251015174101", "20251015174100"} {
		b, err := os.ReadFile(rec.dir.EventsFile(stem))
		if err != nil || len(b) != 0 {
			t.Errorf("%s: %q, %v; want an empty events file", stem, b, err)
		}
		if !rec.done[stem] {
			t.Errorf("%s: ingest not marked done", stem)
		}
	}
	for _, stem := range []string{"20251015174059", "20251015174058"} {
		if _, err := os.Stat(rec.dir.EventsFile(stem)); err == nil {
			t.Errorf("%s: an events file was written for a stem not registered by this producer", stem)
		}
	}
	if lines := readLines(t, rec.dir.EventsFile("20251015174102")); len(lines) == 0 || lines[0] == "" {
		t.Errorf("the tick after them wrote no events")
	}
	if markers, _ := filepath.Glob(filepath.Join(rec.dir.EventsDir(), ".*.registering")); len(markers) > 0 {
		t.Errorf("markers left: %v", markers)
	}
}
