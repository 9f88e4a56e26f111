package tracking

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/mux"

	"github.com/shopledger/shopledger/internal/httpapi/apitest"
	"github.com/shopledger/shopledger/internal/metrics"
	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/schema"
)

func newServer(t *testing.T) string {
	t.Helper()
	inst := stacktest.MariaDB(t)
	stacktest.Database(t, inst, "pipeline_db", schema.Pipeline)
	db := stacktest.As(t, inst, "pipelineapi", "pipeline_db")
	srv := httptest.NewServer(NewHandler(NewStore(db), slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.New("pipelineapi", -1)))
	t.Cleanup(srv.Close)
	return srv.URL
}

// call sends body (a string of JSON, or nil) and decodes the answer into a map.
func call(t *testing.T, method, url string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case string:
		rd = strings.NewReader(b)
	case nil:
	default:
		data, _ := json.Marshal(b)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, url, rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Content-Type") == "application/json" {
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("%s %s: body %q is not JSON: %v", method, url, data, err)
		}
	}
	return resp.StatusCode, out
}

func TestPipelineAPI(t *testing.T) {
	base := newServer(t)
	api := base + BasePath
	const f = "20251015174140"

	t.Run("register", func(t *testing.T) {
		code, body := call(t, "POST", api+"/files/register", map[string]any{"filename": f, "shards": []int{0, 1}})
		if code != 200 || body["created"] != 2.0 || body["filename"] != f {
			t.Fatalf("register = %d %v, want 200 created 2", code, body)
		}
		code, body = call(t, "POST", api+"/files/register", map[string]any{"filename": f, "shards": []int{0, 1}})
		if code != 200 || body["created"] != 0.0 {
			t.Fatalf("register again = %d %v, want 200 created 0", code, body)
		}
		code, body = call(t, "GET", api+"/files/"+f, nil)
		shards := body["shards"].([]any)
		if code != 200 || len(shards) != 2 {
			t.Fatalf("get file = %d %v", code, body)
		}
		row := shards[0].(map[string]any)
		if row["event_ingest_status"] != "started" || row["shard_splitter_status"] != "new" || row["mysql_sender_status"] != "new" {
			t.Errorf("row after register = %v, want ingest started, others new", row)
		}
	})

	t.Run("queue empty before ingest done", func(t *testing.T) {
		code, body := call(t, "GET", api+"/queues/shard-splitter", nil)
		if code != 200 || len(body["items"].([]any)) != 0 || body["stage"] != "shard-splitter" {
			t.Fatalf("queue = %d %v, want no items", code, body)
		}
		code, _ = call(t, "POST", api+"/stages/shard-splitter/start", map[string]any{"filename": f, "shard": 0})
		if code != 409 {
			t.Errorf("start splitter before ingest done = %d, want 409", code)
		}
	})

	t.Run("ingest done", func(t *testing.T) {
		code, body := call(t, "POST", api+"/stages/event-ingest/done", map[string]any{"filename": f})
		if code != 200 || body["updated_rows"] != 2.0 {
			t.Fatalf("ingest done = %d %v, want 200 updated_rows 2", code, body)
		}
		code, body = call(t, "GET", api+"/queues/shard-splitter?limit=10", nil)
		if code != 200 || len(body["items"].([]any)) != 2 {
			t.Fatalf("queue = %d %v, want 2 items", code, body)
		}
		code, body = call(t, "GET", api+"/queues/shard-splitter?limit=10&shard=1", nil)
		items := body["items"].([]any)
		if code != 200 || len(items) != 1 || items[0].(map[string]any)["shard"] != 1.0 {
			t.Fatalf("queue shard=1 = %d %v, want 1 item of shard 1", code, body)
		}
		code, body = call(t, "GET", api+"/queues/shard-splitter?limit=1&offset=1", nil)
		if code != 200 || len(body["items"].([]any)) != 1 {
			t.Fatalf("queue offset = %d %v, want 1 item", code, body)
		}
	})

	t.Run("concurrent start: exactly one wins", func(t *testing.T) {
		const n = 16
		codes := make(chan int, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				code, _ := call(t, "POST", api+"/stages/shard-splitter/start", map[string]any{"filename": f, "shard": 0})
				codes <- code
			})
		}
		wg.Wait()
		close(codes)
		ok, conflict := 0, 0
		for c := range codes {
			switch c {
			case 200:
				ok++
			case 409:
				conflict++
			}
		}
		if ok != 1 || conflict != n-1 {
			t.Fatalf("concurrent start: %d ok, %d conflict, want 1 and %d", ok, conflict, n-1)
		}
	})

	t.Run("state machine", func(t *testing.T) {
		steps := []struct {
			path  string
			shard int
			code  int
			state string
		}{
			{"/stages/shard-worker/start", 0, 409, ""},   // splitter not done
			{"/stages/shard-splitter/retry", 0, 409, ""}, // started is not failed
			{"/stages/shard-splitter/done", 0, 200, "done"},
			{"/stages/shard-splitter/done", 0, 200, "done"}, // a repeated done is harmless
			{"/stages/shard-splitter/start", 0, 409, ""},
			{"/stages/shard-splitter/fail", 0, 409, ""}, // done cannot fail
			{"/stages/shard-worker/start", 0, 200, "started"},
			{"/stages/shard-worker/fail", 0, 200, "failed"},
			{"/stages/shard-worker/done", 0, 409, ""},
			{"/stages/shard-worker/retry", 0, 200, "new"},
			{"/stages/shard-worker/start", 0, 200, "started"},
			{"/stages/shard-worker/done", 0, 200, "done"},
			{"/stages/mysql-sender/done", 0, 409, ""}, // never started
			{"/stages/mysql-sender/fail", 0, 200, "failed"},
			{"/stages/mysql-sender/retry", 0, 200, "new"},
			{"/stages/shard-splitter/done", 1, 409, ""}, // shard 1 never started
		}
		for _, s := range steps {
			code, body := call(t, "POST", api+s.path, map[string]any{"filename": f, "shard": s.shard})
			if code != s.code {
				t.Fatalf("POST %s shard %d = %d %v, want %d", s.path, s.shard, code, body, s.code)
			}
			if s.code == 200 && (body["status"] != s.state || body["shard"] != float64(s.shard)) {
				t.Fatalf("POST %s = %v, want status %s", s.path, body, s.state)
			}
			if s.code != 200 && body["error"] == "" {
				t.Fatalf("POST %s error body = %v, want an error message", s.path, body)
			}
		}
		code, body := call(t, "GET", api+"/queues/mysql-sender", nil)
		items := body["items"].([]any)
		if code != 200 || len(items) != 1 || items[0].(map[string]any)["filename"] != f {
			t.Fatalf("sender queue = %d %v, want the file's shard 0", code, body)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		cases := []struct {
			method, path string
			body         any
			code         int
		}{
			{"POST", "/files/register", `{"filename":`, 400},
			{"POST", "/files/register", map[string]any{"filename": "2025", "shards": []int{0}}, 400},
			{"POST", "/files/register", map[string]any{"filename": "20251399000000", "shards": []int{0}}, 400},
			{"POST", "/files/register", map[string]any{"filename": f, "shards": []int{}}, 400},
			{"POST", "/files/register", map[string]any{"filename": f, "shards": []int{-1}}, 400},
			{"POST", "/files/register", map[string]any{"filename": f, "shards": []int{1, 1}}, 400},
			{"POST", "/files/register", `{"filename":"20251015174140","shards":"0"}`, 400},
			// Found by schemathesis: a null shard was registered as shard 0.
			{"POST", "/files/register", `{"filename":"20251015174140","shards":[null]}`, 400},
			{"POST", "/stages/event-ingest/done", map[string]any{"filename": "20990101000000"}, 404},
			{"POST", "/stages/event-ingest/done", `{}`, 400},
			{"POST", "/stages/shard-worker/start", map[string]any{"filename": f}, 400},
			{"POST", "/stages/shard-worker/start", map[string]any{"filename": f, "shard": -2}, 400},
			{"POST", "/stages/shard-worker/start", map[string]any{"filename": f, "shard": 7}, 404},
			{"POST", "/stages/shard-worker/start", map[string]any{"filename": "20990101000000", "shard": 0}, 404},
			{"POST", "/stages/bogus/start", map[string]any{"filename": f, "shard": 0}, 400},
			{"POST", "/stages/shard-worker/jump", map[string]any{"filename": f, "shard": 0}, 400},
			{"GET", "/queues/bogus", nil, 400},
			{"GET", "/queues/shard-worker?limit=0", nil, 400},
			{"GET", "/queues/shard-worker?limit=x", nil, 400},
			// Found by schemathesis: a parameter given empty was taken as
			// absent, and GET /files/register answered 400, not 405.
			{"GET", "/queues/shard-worker?limit=", nil, 400},
			{"GET", "/queues/shard-worker?shard=", nil, 400},
			{"GET", "/files/register", nil, 405},
			{"GET", "/queues/shard-worker?offset=-1", nil, 400},
			{"GET", "/files/20990101000000", nil, 404},
			{"GET", "/files/nope", nil, 400},
			{"DELETE", "/files/" + f, nil, 405},
		}
		for _, c := range cases {
			code, body := call(t, c.method, api+c.path, c.body)
			if code != c.code {
				t.Errorf("%s %s %v = %d %v, want %d", c.method, c.path, c.body, code, body, c.code)
				continue
			}
			if msg, _ := body["error"].(string); msg == "" {
				t.Errorf("%s %s = %v, want a JSON error body", c.method, c.path, body)
			}
		}
	})

	t.Run("owners", func(t *testing.T) {
		const g = "20251015174141"
		call(t, "POST", api+"/files/register", map[string]any{"filename": g, "shards": []int{0}})
		call(t, "POST", api+"/stages/event-ingest/done", map[string]any{"filename": g})
		steps := []struct {
			path, owner string
			code        int
			err         string
		}{
			{"/stages/shard-splitter/start", "splitter-a", 200, ""},
			{"/stages/shard-splitter/start", "splitter-a", 200, ""}, // the owner's retry after a lost answer
			{"/stages/shard-splitter/start", "splitter-b", 409, `started by "splitter-a"`},
			{"/stages/shard-splitter/start", "", 409, "needs new"},
			{"/stages/shard-splitter/done", "splitter-b", 409, `started by "splitter-a"`},
			{"/stages/shard-splitter/fail", "splitter-b", 409, `started by "splitter-a"`},
			{"/stages/shard-splitter/done", "splitter-a", 200, ""},
		}
		for i, st := range steps {
			if i == 3 {
				code, body := call(t, "GET", api+"/queues/shard-splitter?started_by=splitter-a", nil)
				items := body["items"].([]any)
				if code != 200 || len(items) != 1 || items[0].(map[string]any)["filename"] != g {
					t.Fatalf("started_by queue = %d %v, want the started file", code, body)
				}
				code, body = call(t, "GET", api+"/files/"+g, nil)
				row := body["shards"].([]any)[0].(map[string]any)
				if code != 200 || row["owner"] != "splitter-a" || row["started_at"] == nil {
					t.Fatalf("file row = %v, want owner splitter-a and started_at", row)
				}
			}
			code, body := call(t, "POST", api+st.path, map[string]any{"filename": g, "shard": 0, "owner": st.owner})
			if msg, _ := body["error"].(string); code != st.code || !strings.Contains(msg, st.err) {
				t.Fatalf("step %d: POST %s as %q = %d %v, want %d %q", i, st.path, st.owner, code, body, st.code, st.err)
			}
		}
		// An operator (no owner) may end a task whose owner is gone.
		call(t, "POST", api+"/stages/shard-worker/start", map[string]any{"filename": g, "shard": 0, "owner": "gone"})
		if code, body := call(t, "POST", api+"/stages/shard-worker/fail", map[string]any{"filename": g, "shard": 0}); code != 200 || body["status"] != "failed" {
			t.Fatalf("operator fail of a stuck task = %d %v, want 200 failed", code, body)
		}
		if code, body := call(t, "POST", api+"/stages/shard-worker/retry", map[string]any{"filename": g, "shard": 0}); code != 200 || body["status"] != "new" {
			t.Fatalf("retry = %d %v, want 200 new", code, body)
		}
		if code, body := call(t, "POST", api+"/stages/shard-worker/start", map[string]any{"filename": g, "shard": 0, "owner": "new"}); code != 200 {
			t.Fatalf("start after retry by another owner = %d %v, want 200", code, body)
		}
	})

	t.Run("producers", func(t *testing.T) {
		const h = "20251015174142"
		steps := []struct {
			producer string
			code     int
			created  float64
		}{{"ingest-a", 200, 1}, {"ingest-a", 200, 0}, {"ingest-b", 409, 0}, {"", 409, 0}}
		for _, st := range steps {
			code, body := call(t, "POST", api+"/files/register", map[string]any{"filename": h, "shards": []int{0}, "producer": st.producer})
			if code != st.code || (code == 200 && body["created"] != st.created) {
				t.Fatalf("register by %q = %d %v, want %d", st.producer, code, body, st.code)
			}
			if code == 409 && !strings.Contains(body["error"].(string), `already registered by producer "ingest-a"`) {
				t.Errorf("register by %q error = %v, want it to name the first producer", st.producer, body)
			}
		}
		if code, body := call(t, "GET", api+"/files/"+h, nil); code != 200 || body["producer"] != "ingest-a" {
			t.Errorf("file = %d %v, want producer ingest-a", code, body)
		}
	})

	t.Run("summary", func(t *testing.T) {
		code, body := call(t, "GET", api+"/metrics/summary", nil)
		if code != 200 || body["total"] != 4.0 {
			t.Fatalf("summary = %d %v, want total 4", code, body)
		}
		byStage := body["by_stage"].(map[string]any)
		ingest := byStage["event-ingest"].(map[string]any)
		if ingest["done"] != 3.0 || ingest["started"] != 1.0 {
			t.Errorf("by_stage.event-ingest = %v, want done 3, started 1", ingest)
		}
		worker := byStage["shard-worker"].(map[string]any)
		if worker["done"] != 1.0 || worker["new"] != 2.0 || worker["started"] != 1.0 {
			t.Errorf("by_stage.shard-worker = %v, want done 1, new 2, started 1", worker)
		}
		if shards := body["by_shard"].([]any); len(shards) != 2 {
			t.Errorf("by_shard = %v, want 2 shards", shards)
		}
	})

	t.Run("health, ready, metrics", func(t *testing.T) {
		for _, p := range []string{"/health", "/ready"} {
			if code, _ := call(t, "GET", base+p, nil); code != 200 {
				t.Errorf("GET %s = %d, want 200", p, code)
			}
		}
		if code, _ := call(t, "GET", base+"/nowhere", nil); code != 404 {
			t.Errorf("GET /nowhere = %d, want 404", code)
		}
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// The rows of the summary above, as the backlog gauges.
		for _, want := range []string{
			`shopledger_pipeline_transitions_total{component="pipelineapi",result="refused",stage="shard-splitter",transition="start"}`,
			`shopledger_pipeline_rows{component="pipelineapi",stage="shard-worker",status="new"} 2`,
			`shopledger_pipeline_rows{component="pipelineapi",stage="shard-worker",status="started"} 1`,
			`shopledger_pipeline_rows{component="pipelineapi",stage="event-ingest",status="started"} 1`,
			`shopledger_pipeline_oldest_started_timestamp_seconds{component="pipelineapi",stage="shard-worker"}`,
			`shopledger_ready{component="pipelineapi"} 1`,
			`shopledger_build_info{commit=`,
			`shopledger_http_requests_total{code="409",component="pipelineapi",method="POST",route="/api/v1/pipeline/stages/{stage}/{transition}"}`,
			`shopledger_http_requests_total{code="404",component="pipelineapi",method="GET",route="unmatched"}`,
		} {
			if !strings.Contains(string(data), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		if t.Failed() {
			t.Logf("metrics:\n%s", data)
		}
	})
}

func TestClientRetriesAndClassifies(t *testing.T) {
	base := newServer(t)
	c := pipeline.NewClient(pipeline.ClientConfig{URL: base + BasePath})
	ctx := t.Context()
	if _, err := c.Register(ctx, "20250101000000", []int{0}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Transition(ctx, pipeline.StageShardSplitter, pipeline.TransitionStart, "20250101000000", 0, ""); !errors.Is(err, pipeline.ErrConflict) {
		t.Errorf("start before ingest done: err = %v, want ErrConflict", err)
	}
	if _, err := c.File(ctx, "20990101000000"); !errors.Is(err, pipeline.ErrNotFound) {
		t.Errorf("File(unknown) err = %v, want ErrNotFound", err)
	}
}

// TestOpenAPI: openapi.json describes exactly the routes served, and is
// served at /openapi.json.
func TestOpenAPI(t *testing.T) {
	h := NewHandler(NewStore(nil), slog.New(slog.DiscardHandler), metrics.New("pipelineapi", -1))
	apitest.CheckOpenAPI(t, h.(*mux.Router), OpenAPI)
	srv := httptest.NewServer(h)
	defer srv.Close()
	apitest.Run(t, srv.URL, []apitest.Case{apitest.GET("/openapi.json", 200, `"openapi":"3.0.3"`, `"/api/v1/pipeline/files/register"`)})
}
