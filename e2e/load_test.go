package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/pipeline"
)

// The components of `make run` (ingest, cdc-producers and broker included)
// under generated load for a while (SHOPLEDGER_LOAD_DURATION, default 2m;
// 20s with -short), with the splitter, a worker and a cdc-producer killed
// once along the way: after the queues drain, the audit is clean, every file
// the generator wrote went through, and every account transaction of every
// shard is in Kafka exactly once (repeats of a source position dropped).
func TestGeneratedLoad(t *testing.T) {
	d := 2 * time.Minute
	if testing.Short() {
		d = 20 * time.Second
	}
	if v := os.Getenv("SHOPLEDGER_LOAD_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("SHOPLEDGER_LOAD_DURATION: %v", err)
		}
	}
	s := startStack(t, 2, []string{"ingest", "cdc"}, "EVENTS_EVENTS_PER_BATCH=400", "EVENTS_GENERATION_INTERVAL=1s",
		"GENERATOR_SEED=7", "SPLITTER_RETURN_HOLD=10s")
	time.Sleep(d / 3)
	s.procs["shard-splitter"].Kill()
	s.procs["cdc-producer-0"].Kill()
	time.Sleep(d / 3)
	s.procs["shard-worker-1"].Kill()
	time.Sleep(d / 3)
	written := ingestFilesWritten(s)
	s.procs["ingest"].Stop(10 * time.Second)
	delete(s.procs, "ingest")
	s.waitFinished(2 * time.Minute)

	rep := s.audit()
	sum, err := s.api.Summary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	files := sum.Total / 2
	if files < written {
		t.Errorf("ingest wrote %d files, the pipeline knows %d", written, files)
	}
	if files < int(d/time.Second)/2 || rep.Files != files {
		t.Errorf("%d files registered, %d audited, over %s of load; want about one a second, all audited", files, rep.Files, d)
	}
	if sum.ByStage[pipeline.StageMySQLSender].Done != sum.Total {
		t.Errorf("summary = %+v, want every row mysql-sender done", sum)
	}
	t.Logf("%d files, %d lines: %v", rep.Files, rep.Lines, rep.Outcomes)
	s.checkCDC("account_transaction", 2*time.Minute)
	for _, outcome := range []string{"applied", "rejected", "duplicate"} {
		if rep.Outcomes[outcome] == 0 {
			t.Errorf("no line was %s: the generated data do not exercise that rule", outcome)
		}
	}
}

// ingestFilesWritten reads files_written from the generator's stats.
func ingestFilesWritten(s *stack) int {
	s.t.Helper()
	for _, e := range s.procs["ingest"].Env {
		var port int
		if n, _ := fmt.Sscanf(e, "SERVER_PORT=%d", &port); n != 1 {
			continue
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/events/stats", port))
		if err != nil {
			s.t.Fatalf("ingest stats: %v", err)
		}
		defer resp.Body.Close()
		var st struct {
			FilesWritten int `json:"files_written"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			s.t.Fatalf("ingest stats: %v", err)
		}
		return st.FilesWritten
	}
	s.t.Fatal("ingest has no SERVER_PORT")
	return 0
}
