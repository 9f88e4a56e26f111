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
	"net/http/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/tracing"
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

// Metrics is where a router registers its request metrics and what it
// serves on /metrics: a *metrics.Registry.
type Metrics interface {
	prometheus.Registerer
	Handler() http.Handler
}

// HeaderLogLevel names the request header that raises the log level of
// one request's whole handling: X-Log-Level: debug logs it at debug
// whatever the service's level.
const HeaderLogLevel = "X-Log-Level"

// Router returns a gorilla/mux router with /health, /ready (ready returns
// 503 with the reason while check fails), /metrics from reg, JSON 404/405
// answers, and for every request: a span continuing the caller's trace,
// its log level raised by X-Log-Level, a debug log line, and metrics by
// route template (shopledger_http_requests_total,
// shopledger_http_request_duration_seconds). shopledger_ready is 1 while
// ready answers nil or a degraded state, 0 otherwise.
func Router(service string, reg Metrics, ready func(context.Context) error, log *slog.Logger) *mux.Router {
	r := mux.NewRouter()
	in := &instrument{log: log,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shopledger", Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests by route template, method and status code."}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "shopledger", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "HTTP request latency by route template and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"route", "method"}),
	}
	readyGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "shopledger", Name: "ready",
		Help: "1 while the service's /ready answers 200 (ready or degraded), 0 otherwise."}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil && !errors.Is(err, ErrDegraded) {
			return 0
		}
		return 1
	})
	reg.MustRegister(in.requests, in.latency, readyGauge)
	r.Use(func(next http.Handler) http.Handler {
		return in.wrap(func(req *http.Request) string {
			if cur := mux.CurrentRoute(req); cur != nil {
				if t, err := cur.GetPathTemplate(); err == nil {
					return t
				}
			}
			return "unmatched"
		}, next)
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
	r.Handle("/metrics", reg.Handler()).Methods(http.MethodGet)
	unmatched := func(*http.Request) string { return "unmatched" }
	r.NotFoundHandler = in.wrap(unmatched, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		Error(w, http.StatusNotFound, "no route for %s %s", req.Method, req.URL.Path)
	}))
	r.MethodNotAllowedHandler = in.wrap(unmatched, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", strings.Join(allowed(r, req), ", "))
		Error(w, http.StatusMethodNotAllowed, "method %s not allowed on %s", req.Method, req.URL.Path)
	}))
	return r
}

// allowed lists the methods r routes req's path for (a 405's Allow). A
// literal route of the path (/files/register) hides the routes that would
// take it only as a variable (/files/{filename}).
func allowed(r *mux.Router, req *http.Request) []string {
	var literal, any []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		probe := req.Clone(req.Context())
		probe.Method = m
		_ = r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
			var match mux.RouteMatch
			if !route.Match(probe, &match) || match.MatchErr != nil {
				return nil
			}
			if !slices.Contains(any, m) {
				any = append(any, m)
			}
			if t, err := route.GetPathTemplate(); err == nil && !strings.Contains(t, "{") && !slices.Contains(literal, m) {
				literal = append(literal, m)
			}
			return nil
		})
	}
	if len(literal) > 0 {
		return literal
	}
	return any
}

// ServeOpenAPI serves spec, the service's OpenAPI 3 description, at GET
// /openapi.json.
func ServeOpenAPI(r *mux.Router, spec []byte) {
	r.HandleFunc("/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(spec)
	}).Methods(http.MethodGet)
}

// instrument is what every request goes through.
type instrument struct {
	log      *slog.Logger
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func (in *instrument) wrap(routeOf func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		route := routeOf(req)
		ctx := req.Context()
		if v := req.Header.Get(HeaderLogLevel); v != "" {
			if lvl, err := logging.ParseLevel(v); err == nil {
				ctx = logging.WithLevel(ctx, lvl)
			}
		}
		span := trace.SpanFromContext(ctx) // no-op unless tracing is on
		if tracing.Enabled() {
			ctx, span = tracing.Tracer().Start(tracing.Extract(ctx, req.Header), req.Method+" "+route, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("http.request.method", req.Method), attribute.String("http.route", route),
					attribute.String("url.path", req.URL.Path)))
			defer span.End()
		}
		debug := in.log.Enabled(ctx, slog.LevelDebug)
		if debug {
			in.log.DebugContext(ctx, "request", "method", req.Method, "path", req.URL.Path, "query", req.URL.RawQuery, "route", route,
				"remote", req.RemoteAddr)
		}
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		start := time.Now()
		next.ServeHTTP(rec, req.WithContext(ctx))
		took := time.Since(start)
		in.latency.WithLabelValues(route, req.Method).Observe(took.Seconds())
		in.requests.WithLabelValues(route, req.Method, strconv.Itoa(rec.code)).Inc()
		if span.IsRecording() {
			span.SetAttributes(attribute.Int("http.response.status_code", rec.code))
			if rec.code >= 500 {
				span.SetStatus(codes.Error, http.StatusText(rec.code))
			}
		}
		if debug {
			in.log.DebugContext(ctx, "response", "method", req.Method, "path", req.URL.Path, "code", rec.code, "took", took)
		}
	})
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
	// Pprof serves Go's profiles under /debug/pprof/ (net/http/pprof) on
	// the same address: off by default, on for profiling a running
	// process (a CPU profile's seconds must stay below WriteTimeout).
	Pprof bool `mapstructure:"pprof"`
}

// Addr is host:port.
func (c ServerConfig) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// Serve runs h on cfg's address until ctx ends, then shuts down, giving
// in-flight requests five seconds.
func Serve(ctx context.Context, cfg ServerConfig, h http.Handler, log *slog.Logger) error {
	if cfg.Pprof {
		h = withPprof(h)
	}
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

// withPprof serves Go's profiles under /debug/pprof/ and h everywhere
// else.
func withPprof(h http.Handler) http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	m.Handle("/", h)
	return m
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
// absent (present but empty is an error). The error is fit to be shown to
// the client.
func QueryInt(r *http.Request, name string, def, lo, hi int) (int, error) {
	q := r.URL.Query()
	if !q.Has(name) {
		return def, nil
	}
	s := q.Get(name)
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%s must be an integer from %d to %d, got %q", name, lo, hi, s)
	}
	return v, nil
}
