package consume

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopledger/shopledger/internal/tracing"
)

// headerTraceParent is the Kafka header of a change's trace context (the
// cdc-producer's transaction span).
const headerTraceParent = "traceparent"

// maxTraces bounds the traces one batch continues.
const maxTraces = 64

// traceBatch starts the batch's span, linked to the traces its messages
// carry, and returns what ends it. Ending it also adds, to each of those
// traces, a span of the batch's work on its changes (a child of the
// producer's transaction span, linked to the batch span): one trace
// follows a file from ingest to the consumers' update. With tracing off
// it does nothing.
func (c *Consumer[C]) traceBatch(ctx context.Context, b *Batch[C]) (context.Context, func(Result, error)) {
	if !tracing.Enabled() {
		return ctx, func(Result, error) {}
	}
	parents := b.traces()
	links := make([]trace.Link, len(parents))
	for i, sc := range parents {
		links[i] = trace.Link{SpanContext: sc}
	}
	start := time.Now()
	attrs := []attribute.KeyValue{attribute.String("messaging.system", "kafka"), attribute.String("messaging.consumer.group.name", c.cfg.Group),
		attribute.Int("messaging.batch.message_count", b.Len())}
	ctx, span := tracing.Tracer().Start(ctx, c.cfg.Group+" batch", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(links...),
		trace.WithAttributes(attrs...))
	return ctx, func(res Result, err error) {
		counts := []attribute.KeyValue{attribute.Int("shopledger.applied", res.Applied), attribute.Int("shopledger.duplicates", res.Duplicates),
			attribute.Int("shopledger.dead_letters", res.Dead)}
		span.SetAttributes(counts...)
		for _, sc := range parents {
			_, s := tracing.Tracer().Start(trace.ContextWithRemoteSpanContext(context.Background(), sc), c.cfg.Group+" apply",
				trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(start),
				trace.WithLinks(trace.Link{SpanContext: span.SpanContext()}), trace.WithAttributes(attrs...))
			s.SetAttributes(counts...)
			tracing.End(s, err)
		}
		tracing.End(span, err)
	}
}

// traces are the distinct trace contexts the batch's messages carry, at
// most maxTraces.
func (b *Batch[C]) traces() []trace.SpanContext {
	var out []trace.SpanContext
	seen := map[trace.SpanID]bool{}
	for _, m := range b.msgs {
		for _, h := range m.Headers {
			if h.Key != headerTraceParent {
				continue
			}
			sc := tracing.Parse(string(h.Value))
			if sc.IsValid() && !seen[sc.SpanID()] && len(out) < maxTraces {
				seen[sc.SpanID()] = true
				out = append(out, sc)
			}
		}
	}
	return out
}
