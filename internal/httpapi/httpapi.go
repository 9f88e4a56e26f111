// Package httpapi is the HTTP plumbing every shopledger service shares: JSON
// answers and JSON errors, /health, /ready and Prometheus /metrics, request
// metrics per route, and a server that shuts down cleanly on context end.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// WriteJSON writes v with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Error writes {"error": msg} with status code.
func Error(w http.ResponseWriter, code int, format string, args ...any) {
	WriteJSON(w, code, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// DecodeBody reads a JSON body of at most 1 MiB into v. The error is fit to
// be shown to the client.
func DecodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("body larger than %d bytes", mbe.Limit)
		}
		return fmt.Errorf("invalid JSON body: %v", err)
	}
	return nil
}

// ErrDegraded is wrapped by a readiness check's error to say the service
// works but needs an operator's look (changes dead-lettered, say): /ready
// answers 200 with status "degraded" and the reason, so it stays in
// rotation while alerts and dashboards show it.
var ErrDegraded = errors.New("degraded")

// Router returns a gorilla/mux router with /health, /ready (ready returns
// 503 with the reason while check fails), /metrics from reg, JSON 404/405
// answers, and request metrics for every route.
func Router(service string, reg *prometheus.Registry, ready func(context.Context) error) *mux.Router {
	r := mux.NewRouter()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total", Help: "HTTP requests by route and status code.",
		ConstLabels: prometheus.Labels{"service": service},
	}, []string{"route", "method", "code"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "http_request_duration_seconds", Help: "HTTP request latency by route.",
		ConstLabels: prometheus.Labels{"service": service}, Buckets: prometheus.DefBuckets,
	}, []string{"route", "method"})
	reg.MustRegister(requests, latency)
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			route := "unmatched"
			if cur := mux.CurrentRoute(req); cur != nil {
				if t, err := cur.GetPathTemplate(); err == nil {
					route = t
				}
			}
			rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
			start := time.Now()
			next.ServeHTTP(rec, req)
			latency.WithLabelValues(route, req.Method).Observe(time.Since(start).Seconds())
			requests.WithLabelValues(route, req.Method, strconv.Itoa(rec.code)).Inc()
		})
	})
	r.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok", "service": service})
	}).Methods(http.MethodGet)
	r.HandleFunc("/ready", func(w http.ResponseWriter, req *http.Request) {
		ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
		defer cancel()
		switch err := ready(ctx); {
		case errors.Is(err, ErrDegraded):
			WriteJSON(w, http.StatusOK, map[string]string{"status": "degraded", "reason": err.Error()})
			return
		case err != nil:
			WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
			return
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}).Methods(http.MethodGet)
	r.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{})).Methods(http.MethodGet)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		Error(w, http.StatusNotFound, "no route for %s %s", req.Method, req.URL.Path)
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		Error(w, http.StatusMethodNotAllowed, "method %s not allowed on %s", req.Method, req.URL.Path)
	})
	return r
}

// NewRegistry returns a registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return reg
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// ServerConfig holds the [server] keys every service shares.
type ServerConfig struct {
	Host         string        `mapstructure:"host"`
	Port         int           `mapstructure:"port"`
	ReadTimeout  time.Duration `mapstructure:"read_timeout"`
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	IdleTimeout  time.Duration `mapstructure:"idle_timeout"`
}

// Addr is host:port.
func (c ServerConfig) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// Serve runs h on cfg's address until ctx ends, then shuts down, giving
// in-flight requests five seconds.
func Serve(ctx context.Context, cfg ServerConfig, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Addr: cfg.Addr(), Handler: h, ReadTimeout: cfg.ReadTimeout,
		WriteTimeout: cfg.WriteTimeout, IdleTimeout: cfg.IdleTimeout, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", srv.Addr, err)
	}
	log.Info("listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// PathID reads the path variable name as an id: a decimal integer from 0
// to 2^63-1. The error is fit to be shown to the client.
func PathID(r *http.Request, name string) (int64, error) {
	s := mux.Vars(r)[name]
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 0 {
		return 0, fmt.Errorf("%s must be an integer from 0 to %d, got %q", name, int64(math.MaxInt64), s)
	}
	return id, nil
}

// QueryInt reads query parameter name as an integer in [lo, hi], def when
// absent. The error is fit to be shown to the client.
func QueryInt(r *http.Request, name string, def, lo, hi int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%s must be an integer from %d to %d, got %q", name, lo, hi, s)
	}
	return v, nil
}
