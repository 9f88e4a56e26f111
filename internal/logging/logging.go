// Package logging builds the structured logger of a component from the
// [logging] config keys every component shares. A context may lower the
// level for the work done under it (WithLevel: an HTTP request with
// X-Log-Level: debug is logged at debug through its whole handling,
// whatever the component's level), and records made under a traced context
// carry its trace_id and span_id, so a log line leads to its trace.
package logging

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Config is the [logging] section.
type Config struct {
	Level  string `mapstructure:"level"`  // debug, info, warn or error
	Format string `mapstructure:"format"` // text or json
}

// Default is info-level text.
var Default = Config{Level: "info", Format: "text"}

// Validate names the bad key.
func (c Config) Validate() error {
	if _, err := ParseLevel(c.Level); err != nil {
		return fmt.Errorf("logging.level: %w", err)
	}
	if c.Format != "text" && c.Format != "json" {
		return fmt.Errorf("logging.format: must be text or json, got %q", c.Format)
	}
	return nil
}

// ParseLevel reads debug, info, warn or error (any case).
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(strings.ToUpper(s)))
	if err != nil {
		return 0, fmt.Errorf("must be debug, info, warn or error, got %q", s)
	}
	return l, nil
}

// New returns a logger writing to stderr with a "component" attribute.
func New(c Config, component string) *slog.Logger {
	lvl, _ := ParseLevel(c.Level)
	return slog.New(NewHandler(os.Stderr, c.Format, lvl)).With("component", component)
}

// NewHandler returns the handler New uses, writing text or json to w at
// level and above, lower where the context says so (WithLevel).
func NewHandler(w interface{ Write([]byte) (int, error) }, format string, level slog.Level) slog.Handler {
	opts := &slog.HandlerOptions{Level: slog.LevelDebug} // the wrapper decides
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return &handler{inner: h, level: level}
}

type levelKey struct{}

// WithLevel returns ctx under which records at level and above are
// written whatever the logger's own level.
func WithLevel(ctx context.Context, level slog.Level) context.Context {
	return context.WithValue(ctx, levelKey{}, level)
}

// handler filters by its level or the context's, whichever is lower, and
// adds the context's trace to records.
type handler struct {
	inner slog.Handler
	level slog.Level
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	if l >= h.level {
		return true
	}
	if ctx == nil {
		return false
	}
	min, ok := ctx.Value(levelKey{}).(slog.Level)
	return ok && l >= min
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			r = r.Clone()
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		}
	}
	return h.inner.Handle(ctx, r)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &handler{inner: h.inner.WithAttrs(attrs), level: h.level}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{inner: h.inner.WithGroup(name), level: h.level}
}
