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

// txTrace is the trace of the transaction being read, if it has one.
type txTrace struct {
	span    trace.Span
	headers []kafka.Header // shared, read-only, by every message of the transaction
	rows    int
}

// traceTable reports whether e maps the trace context table, read while
// tracing is on.
func (t *txn) traceTable(e *replication.TableMapEvent) bool {
	return tracing.Enabled() && string(e.Table) == tracing.ContextTable
}

// traceRows reads the trace context of a rows event of the context table
// (the first starts the transaction's span) and reports whether the event
// is done with: it is, unless the table is also captured.
func (t *txn) traceRows(ctx context.Context, e *replication.RowsEvent, cols *columns) bool {
	if string(e.Table.Table) != tracing.ContextTable {
		return false
	}
	if t.tr.span == nil && len(e.Rows) > 0 {
		tp, _ := cols.value(e.Rows[len(e.Rows)-1], tracing.ContextColumn).(string) // an insert's row, an update's after image
		if tp != "" {
			sctx, span := tracing.Start(ctx, "cdc transaction", tp, trace.WithSpanKind(trace.SpanKindProducer),
				trace.WithAttributes(tracing.Shard(t.c.cfg.Shard), attribute.String("messaging.system", "kafka")))
			t.tr = txTrace{span: span, headers: []kafka.Header{{Key: HeaderTraceParent, Value: []byte(tracing.TraceParent(sctx))}}}
		}
	}
	_, captured := t.c.cfg.Tables[tracing.ContextTable]
	return !captured
}

// committed hands the transaction's span to be ended when Kafka has its
// checkpoint cp.
func (t *txn) committed(cp Checkpoint) {
	if t.tr.span == nil {
		return
	}
	t.tr.span.SetAttributes(attribute.String("shopledger.gtid", cp.GTID), attribute.String("shopledger.binlog.file", cp.File),
		attribute.Int64("shopledger.binlog.pos", int64(cp.Pos)), attribute.Int("messaging.batch.message_count", t.tr.rows))
	t.c.spans.add(cp, t.tr.span)
	t.tr = txTrace{}
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
