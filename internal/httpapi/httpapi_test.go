package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/metrics"
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
