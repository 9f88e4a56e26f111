package httpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/metrics"
)

// Go's profiles are served only when server.pprof is on; the service's
// own routes answer either way.
func TestPprofSetting(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("pprof=%v", on), func(t *testing.T) {
			port := freePort(t)
			cfg := httpapi.ServerConfig{Host: "127.0.0.1", Port: port, ReadTimeout: time.Second, WriteTimeout: 5 * time.Second, Pprof: on}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			log := slog.New(slog.DiscardHandler)
			h := httpapi.Router("test", metrics.New("test", -1), func(context.Context) error { return nil }, log)
			go func() { done <- httpapi.Serve(ctx, cfg, h, log) }()
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Serve = %v", err)
				}
			})
			base := "http://" + cfg.Addr()
			wantPprof := http.StatusNotFound
			if on {
				wantPprof = http.StatusOK
			}
			for path, want := range map[string]int{"/health": http.StatusOK, "/debug/pprof/": wantPprof, "/debug/pprof/heap": wantPprof} {
				if got := status(t, base+path); got != want {
					t.Errorf("GET %s with pprof=%v = %d, want %d", path, on, got, want)
				}
			}
		})
	}
}

func status(t *testing.T, url string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return resp.StatusCode
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
