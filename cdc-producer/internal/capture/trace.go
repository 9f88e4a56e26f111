package capture

import (
	"context"
	"sync"

	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopledger/shopledger/internal/tracing"
)

// Tracing (README, Tracing): a transaction whose writer recorded its trace
// context (the mysql-sender does, under a trace, in the row of
// tracing.ContextTable it writes first) gets a span, a child of the
// writer's, from that row to the Kafka acknowledgement of its checkpoint;
// each of its messages carries the span's context in a W3C traceparent
// header, which the consumers continue. The context table's rows are read
// only while tracing is on, and published only if it is a captured table.

// HeaderTraceParent is the Kafka header of a change's trace context.
const HeaderTraceParent = "traceparent"

// txTrace is the trace of the transaction being decoded, if it has one.
type txTrace struct {
	span    trace.Span
	headers []kafka.Header // shared, read-only, by every message of the transaction
	rows    int
}

// isTraceContext reports whether table of schema db is the trace context
// table, read while tracing is on.
func (d *Decoder) isTraceContext(db, table string) bool {
	return table == tracing.ContextTable && db == d.enc.db && tracing.Enabled()
}

// traceRows reads the trace context of a rows event of the context table
// (the first starts the transaction's span) and reports whether the event
// is done with: it is, unless the table is also captured.
func (d *Decoder) traceRows(ctx context.Context, e *replication.RowsEvent, t *Table) bool {
	if t.name != tracing.ContextTable {
		return false
	}
	if d.tr.span == nil && len(e.Rows) > 0 && tracing.Enabled() {
		tp, _ := t.value(e.Rows[len(e.Rows)-1], tracing.ContextColumn).(string) // an insert's row, an update's after image
		if tp != "" {
			sctx, span := tracing.Start(ctx, "cdc transaction", tp, trace.WithSpanKind(trace.SpanKindProducer),
				trace.WithAttributes(tracing.Shard(d.shard), attribute.String("messaging.system", "kafka")))
			d.tr = txTrace{span: span, headers: []kafka.Header{{Key: HeaderTraceParent, Value: []byte(tracing.TraceParent(sctx))}}}
		}
	}
	return !d.enc.captures(d.enc.db, t.name)
}

// traced gives the messages msgs[from:] the transaction's trace context.
func (d *Decoder) traced(msgs []kafka.Message, from int) {
	if d.tr.headers == nil {
		return
	}
	for i := from; i < len(msgs); i++ {
		msgs[i].Headers = d.tr.headers
	}
}

// endTrace hands over the transaction's span, if it has one, with its
// message count; the next transaction starts without.
func (d *Decoder) endTrace() trace.Span {
	span := d.tr.span
	if span != nil {
		span.SetAttributes(attribute.Int("messaging.batch.message_count", d.tr.rows))
	}
	d.tr = txTrace{}
	return span
}

// committed hands the span of the transaction that ends at cp, if it has
// one, to be ended when Kafka has cp.
func (c *Capture) committed(cp Checkpoint, span trace.Span) {
	if span == nil {
		return
	}
	span.SetAttributes(attribute.String("shopledger.gtid", cp.GTID), attribute.String("shopledger.binlog.file", cp.File),
		attribute.Int64("shopledger.binlog.pos", int64(cp.Pos)))
	c.spans.add(cp, span)
}

// pendingSpans are the spans of transactions queued, not yet acknowledged.
type pendingSpans struct {
	mu    sync.Mutex
	spans []pendingSpan
}

type pendingSpan struct {
	file string
	pos  uint32
	span trace.Span
}

func (p *pendingSpans) add(cp Checkpoint, span trace.Span) {
	p.mu.Lock()
	p.spans = append(p.spans, pendingSpan{cp.File, cp.Pos, span})
	p.mu.Unlock()
}

// acknowledged ends the spans of the transactions up to cp.
func (p *pendingSpans) acknowledged(cp Checkpoint) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.spans {
		if s.file < cp.File || s.file == cp.File && s.pos <= cp.Pos {
			s.span.End()
			continue
		}
		p.spans[n] = s
		n++
	}
	p.spans = p.spans[:n]
}

// abandon ends the spans left when the stream stops: their transactions
// will be read and published again.
func (p *pendingSpans) abandon() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.spans {
		s.span.SetStatus(codes.Error, "not acknowledged before the stream stopped; published again after the restart")
		s.span.End()
	}
	p.spans = nil
}
