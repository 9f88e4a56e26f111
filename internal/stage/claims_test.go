package stage_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/internal/stage"
)

// lossy forwards requests to the real pipeline API but loses the answer to
// the first start: the API commits it, the client sees its connection die.
func lossy(t *testing.T, api string) string {
	t.Helper()
	target, _ := url.Parse(api)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var lost atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/start") && lost.CompareAndSwap(false, true) {
			rec := httptest.NewRecorder()
			proxy.ServeHTTP(rec, r) // committed by the API...
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close() // ...and the answer never arrives
			}
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// A start whose answer is lost is retried by its owner and succeeds; the
// task is its, not stuck started with nobody working on it. A restarted
// owner finds it among the tasks it started.
func TestClaimSurvivesALostAnswer(t *testing.T) {
	inst := stacktest.MariaDB(t)
	direct := stacktest.PipelineAPI(t, inst)
	ctx := context.Background()
	const file = "20251015180000"
	if _, err := direct.Register(ctx, file, []int{0}, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.IngestDone(ctx, file); err != nil {
		t.Fatal(err)
	}
	base := strings.TrimSuffix(direct.URL(), "/api/v1/pipeline")
	api := pipeline.NewClient(pipeline.ClientConfig{URL: lossy(t, base) + "/api/v1/pipeline", Backoff: 20 * time.Millisecond})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	claims := stage.Claims{API: api, Owner: "shard-splitter", Log: log}
	ok, err := claims.Claim(ctx, pipeline.StageShardSplitter, file, 0)
	if err != nil || !ok {
		t.Fatalf("Claim after a lost answer = %v, %v; want the task, its owner's retry succeeding", ok, err)
	}
	restarted := stage.Claims{API: direct, Owner: "shard-splitter", Log: log}
	items, err := restarted.Started(ctx, pipeline.StageShardSplitter, -1, 10)
	if err != nil || len(items) != 1 || items[0].Filename != file {
		t.Fatalf("Started by the owner = %+v, %v; want the file", items, err)
	}
	other := stage.Claims{API: direct, Owner: "someone-else", Log: log}
	if ok, err := other.Claim(ctx, pipeline.StageShardSplitter, file, 0); ok || err != nil {
		t.Errorf("Claim by another owner = %v, %v; want refused", ok, err)
	}
	if err := restarted.Finish(ctx, pipeline.StageShardSplitter, file, 0, false); err != nil {
		t.Fatal(err)
	}
}
