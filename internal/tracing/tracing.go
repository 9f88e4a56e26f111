// Package tracing is the product's OpenTelemetry tracing: one setting
// (tracing.endpoint, an OTLP/HTTP collector such as Jaeger's
// http://jaeger:4318) turns it on, off by default. A trace follows an
// events file from ingest to the balance update: every stage continues
// the trace of the file it works on (the pipeline API keeps each
// (file, shard) row's trace context, handed over with the W3C traceparent
// header of the API calls), each mysql-sender transaction records it in a
// row (ContextTable) that the cdc-producer reads from the binlog, and every
// change message carries it in a traceparent header.
//
// With tracing off, Start returns the context unchanged and a no-op span
// without allocating, so hot paths pay a branch.
package tracing

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config is the [tracing] section every component has.
type Config struct {
	// Endpoint is the OTLP/HTTP collector's base URL, e.g.
	// http://127.0.0.1:4318 (spans go to <endpoint>/v1/traces), or the
	// full URL of its traces path; empty turns tracing off.
	Endpoint string `mapstructure:"endpoint"`
	// SampleRatio is the share of new traces recorded, 0..1; a span whose
	// trace began elsewhere follows its parent's decision.
	SampleRatio float64 `mapstructure:"sample_ratio"`
}

// Default is off, every trace recorded once on.
var Default = Config{SampleRatio: 1}

// Validate names the bad key.
func (c Config) Validate() error {
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("tracing.endpoint: must be an http(s)://host:port URL or empty (off), got %q", c.Endpoint)
		}
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		return fmt.Errorf("tracing.sample_ratio: must be 0..1, got %g", c.SampleRatio)
	}
	return nil
}

// Name is the instrumentation scope of every span the product makes.
const Name = "github.com/shopledger/shopledger"

var (
	enabled atomic.Bool
	tracer  atomic.Pointer[trace.Tracer]
)

func init() {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t := noop.NewTracerProvider().Tracer(Name)
	tracer.Store(&t)
}

// Setup turns tracing on for service when c has an endpoint: spans are
// batched to the OTLP/HTTP collector. stop flushes what is left (for up
// to five seconds); call it before the process exits. Without an
// endpoint nothing changes and stop does nothing.
func Setup(ctx context.Context, c Config, service string, attrs ...attribute.KeyValue) (stop func(), err error) {
	if c.Endpoint == "" {
		return func() {}, nil
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("tracing.endpoint %q: %w", c.Endpoint, err)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces" // a collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(u.String()), otlptracehttp.WithTimeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("tracing exporter %s: %w", c.Endpoint, err)
	}
	shutdown := Use(sdktrace.NewBatchSpanProcessor(exp), c.SampleRatio, service, attrs...)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = shutdown(ctx)
	}, nil
}

// Shard is the attribute naming the shard of a per-shard process (a
// resource attribute) or of the work a span does.
func Shard(i int) attribute.KeyValue { return attribute.Int("shopledger.shard", i) }

// Use turns tracing on with span processor p (tests pass a
// tracetest.SpanRecorder) and returns what turns it off again.
func Use(p sdktrace.SpanProcessor, ratio float64, service string, attrs ...attribute.KeyValue) func(context.Context) error {
	res := resource.NewWithAttributes(semconv.SchemaURL, append([]attribute.KeyValue{semconv.ServiceName(service)}, attrs...)...)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(p), sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
	otel.SetTracerProvider(tp)
	t := tp.Tracer(Name)
	tracer.Store(&t)
	enabled.Store(true)
	return func(ctx context.Context) error {
		enabled.Store(false)
		n := noop.NewTracerProvider().Tracer(Name)
		tracer.Store(&n)
		return tp.Shutdown(ctx)
	}
}

// Enabled reports whether tracing is on.
func Enabled() bool { return enabled.Load() }

// Tracer is the product's tracer (a no-op one while tracing is off).
func Tracer() trace.Tracer { return *tracer.Load() }

var noopSpan = trace.SpanFromContext(context.Background())

// Start starts a span named name under ctx's span, or under the remote
// parent traceparent when ctx has none and traceparent is a valid W3C
// traceparent. With tracing off it returns ctx and a no-op span.
func Start(ctx context.Context, name string, traceparent string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !enabled.Load() {
		return ctx, noopSpan
	}
	if traceparent != "" && !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = WithParent(ctx, traceparent)
	}
	return Tracer().Start(ctx, name, opts...)
}

// WithParent returns ctx with the remote span context of traceparent as
// its parent (ctx unchanged when traceparent is not valid).
func WithParent(ctx context.Context, traceparent string) context.Context {
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// TraceParent is the W3C traceparent of ctx's span, "" when ctx has no
// valid span context.
func TraceParent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return Format(sc)
}

// Format renders sc as a W3C traceparent.
func Format(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// Parse reads a W3C traceparent; the span context is not valid when tp
// is not one.
func Parse(tp string) trace.SpanContext {
	return trace.SpanContextFromContext(WithParent(context.Background(), tp))
}

// FromHeader is the valid traceparent an HTTP request carries, rendered
// anew, or "".
func FromHeader(h http.Header) string {
	sc := Parse(h.Get("traceparent"))
	if !sc.IsValid() {
		return ""
	}
	return Format(sc)
}

// Inject writes ctx's trace context into h (nothing when it has none).
func Inject(ctx context.Context, h http.Header) {
	if trace.SpanContextFromContext(ctx).IsValid() {
		otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(h))
	}
}

// Extract returns ctx with the trace context h carries, if any.
func Extract(ctx context.Context, h http.Header) context.Context {
	if h.Get("traceparent") == "" {
		return ctx
	}
	return otel.GetTextMapPropagator().Extract(ctx, propagation.HeaderCarrier(h))
}

// ContextTable and ContextColumn are where a shard worker's transaction
// records its trace context: the row of file_progress it writes first
// (shard migration 0004), which the cdc-producer reads in the binlog.
const (
	ContextTable  = "file_progress"
	ContextColumn = "trace_parent"
)

// End ends span, marking it failed with err when err is not nil.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// File is the attribute naming the events file (its 14-digit stem) a
// span works on.
func File(stem string) attribute.KeyValue { return attribute.String("shopledger.file", stem) }
