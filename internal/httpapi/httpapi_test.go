package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/metrics"
	"github.com/shopledger/shopledger/internal/tracing"
)

// syncBuffer is a log sink the server's goroutines share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.b.String()
	s.b.Reset()
	return out
}

// TestLogLevelHeader: a service logging at warn logs a request sent with
// X-Log-Level: debug at debug through its whole handling (the router's
// request and response lines and the handler's own debug line), and
// nothing of a request without it.
func TestLogLevelHeader(t *testing.T) {
	var logs syncBuffer
	lvl, _ := logging.ParseLevel("warn")
	log := slog.New(logging.NewHandler(&logs, "text", lvl))
	r := httpapi.Router("test", metrics.New("test", -1), func(context.Context) error { return nil }, log)
	r.HandleFunc("/api/v1/things/{id}", func(w http.ResponseWriter, req *http.Request) {
		log.DebugContext(req.Context(), "looking the thing up", "id", "7")
		log.Info("an info line without the request's context")
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"id": "7"})
	}).Methods(http.MethodGet)
	srv := httptest.NewServer(r)
	defer srv.Close()

	get := func(level string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/things/7", nil)
		if level != "" {
			req.Header.Set(httpapi.HeaderLogLevel, level)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET = %d, want 200", resp.StatusCode)
		}
	}

	get("")
	if got := logs.take(); got != "" {
		t.Errorf("a request without X-Log-Level at level warn logged:\n%s", got)
	}
	get("debug")
	got := logs.take()
	for _, want := range []string{`level=DEBUG msg=request method=GET path=/api/v1/things/7`, `route=/api/v1/things/{id}`,
		`level=DEBUG msg="looking the thing up" id=7`, `level=DEBUG msg=response`, `code=200`} {
		if !strings.Contains(got, want) {
			t.Errorf("with X-Log-Level: debug the log lacks %q; it is:\n%s", want, got)
		}
	}
	if strings.Contains(got, "without the request's context") {
		t.Errorf("a line logged without the request's context was raised too:\n%s", got)
	}
	get("nonsense")
	if got := logs.take(); got != "" {
		t.Errorf("X-Log-Level: nonsense changed the level:\n%s", got)
	}
}

// TestMethodNotAllowed: a method the router does not serve on a path
// answers 405 with a JSON error and an Allow header listing the methods it
// serves there; a path served literally (/things/new) does not list the
// methods of a route that takes it only as a variable (/things/{id}).
func TestMethodNotAllowed(t *testing.T) {
	r := httpapi.Router("test", metrics.New("test", -1), func(context.Context) error { return nil }, slog.New(slog.DiscardHandler))
	ok := func(w http.ResponseWriter, _ *http.Request) { httpapi.WriteJSON(w, http.StatusOK, map[string]string{}) }
	r.HandleFunc("/things/new", ok).Methods(http.MethodPost)
	r.HandleFunc("/things/{id}", ok).Methods(http.MethodGet, http.MethodPut)
	srv := httptest.NewServer(r)
	defer srv.Close()
	for _, c := range []struct{ method, path, allow string }{
		{http.MethodOptions, "/things/new", "POST"},
		{http.MethodDelete, "/things/7", "GET, PUT"},
		{http.MethodPost, "/metrics", "GET"},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != c.allow || !strings.Contains(string(body), `"error"`) {
			t.Errorf("%s %s = %d, Allow %q, %s; want 405, Allow %q and a JSON error", c.method, c.path, resp.StatusCode,
				resp.Header.Get("Allow"), body, c.allow)
		}
	}
}

// TestRequestSpan: with tracing on, a request gets a server span named by
// its route template, a child of the caller's span whose traceparent it
// carried, with its status code; with tracing off, none.
func TestRequestSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	stop := tracing.Use(rec, 1, "test")
	r := httpapi.Router("test", metrics.New("test", -1), func(context.Context) error { return nil }, slog.New(slog.DiscardHandler))
	r.HandleFunc("/api/v1/things/{id}", func(w http.ResponseWriter, _ *http.Request) {
		httpapi.Error(w, http.StatusNotFound, "no thing")
	}).Methods(http.MethodGet)
	srv := httptest.NewServer(r)
	defer srv.Close()
	get := func(ctx context.Context) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/things/7", nil)
		tracing.Inject(ctx, req.Header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	ctx, caller := tracing.Tracer().Start(context.Background(), "caller")
	get(ctx)
	caller.End()
	stop(context.Background())
	get(context.Background())

	var spans []string
	for _, s := range rec.Ended() {
		spans = append(spans, s.Name())
		if s.Name() != "GET /api/v1/things/{id}" {
			continue
		}
		if s.Parent().SpanID() != caller.SpanContext().SpanID() || !s.Parent().IsRemote() || s.SpanKind() != trace.SpanKindServer {
			t.Errorf("request span: parent %v (remote %v), kind %v; want the caller's span %v, remote, server", s.Parent().SpanID(),
				s.Parent().IsRemote(), s.SpanKind(), caller.SpanContext().SpanID())
		}
		if !slices.Contains(s.Attributes(), attribute.Int("http.response.status_code", 404)) {
			t.Errorf("request span attributes %v lack the status code 404", s.Attributes())
		}
	}
	if want := []string{"GET /api/v1/things/{id}", "caller"}; !slices.Equal(spans, want) {
		t.Errorf("spans ended %v, want %v (none once tracing is off)", spans, want)
	}
}
