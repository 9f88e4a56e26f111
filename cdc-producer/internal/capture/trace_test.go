package capture

import (
	"context"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/shopledger/shopledger/internal/tracing"
)

// contextTable maps the trace context table as a shard's binlog does.
func contextTable() *replication.TableMapEvent {
	return &replication.TableMapEvent{
		TableID: 9, Schema: []byte("shop"), Table: []byte(tracing.ContextTable), ColumnCount: 2,
		ColumnType: []byte{mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VARCHAR},
		ColumnMeta: []uint16{255, 255},
		ColumnName: [][]byte{[]byte("file"), []byte(tracing.ContextColumn)},
		// ColumnCharset: both utf8mb4.
		ColumnCharset: []uint64{255, 255},
	}
}

// decodeTraced feeds dec a transaction that writes the trace context
// (when tp is not empty) and then a row of t; it returns the messages and
// the transaction's end.
func decodeTraced(t *testing.T, dec *Decoder, tp string, pos uint32) ([]kafka.Message, *End) {
	t.Helper()
	tm, cm := table(), contextTable()
	h := func(typ replication.EventType) *replication.EventHeader {
		pos += 100
		return &replication.EventHeader{EventType: typ, ServerID: 1, EventSize: 100, LogPos: pos, Timestamp: 1760550100}
	}
	evs := []*replication.BinlogEvent{
		{Header: h(replication.MARIADB_GTID_EVENT), Event: &replication.MariadbGTIDEvent{GTID: mysql.MariadbGTID{DomainID: 0, ServerID: 1, SequenceNumber: uint64(pos)}}},
		{Header: h(replication.TABLE_MAP_EVENT), Event: cm},
	}
	if tp != "" {
		evs = append(evs, &replication.BinlogEvent{Header: h(replication.WRITE_ROWS_EVENTv1),
			Event: &replication.RowsEvent{Table: cm, TableID: 9, Rows: [][]any{{"f1", tp}}}})
	}
	evs = append(evs,
		&replication.BinlogEvent{Header: h(replication.TABLE_MAP_EVENT), Event: tm},
		&replication.BinlogEvent{Header: h(replication.WRITE_ROWS_EVENTv1),
			Event: &replication.RowsEvent{Table: tm, TableID: 7, Rows: [][]any{{int64(1), "1.00", nil, nil, nil, int64(1), nil, nil}}}},
		&replication.BinlogEvent{Header: h(replication.XID_EVENT), Event: &replication.XIDEvent{}})
	var msgs []kafka.Message
	var end *End
	for _, ev := range evs {
		var err error
		if msgs, end, err = dec.Decode(context.Background(), msgs, ev); err != nil {
			t.Fatal(err)
		}
	}
	if end == nil {
		t.Fatal("no transaction end after the XID event")
	}
	return msgs, end
}

func TestDecoderCarriesTraceContext(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	stop := tracing.Use(rec, 1, "cdc-producer")
	t.Cleanup(func() { stop(context.Background()) })
	cfg := Config{Shard: 2, Database: "shop", TopicPrefix: "shop", TransactionMetadata: true,
		Tables: map[string]Key{"t": {Columns: []string{"id"}}}}
	dec := NewDecoder(NewEncoder(cfg, "mariadb", NewMetrics(prometheus.NewRegistry())), nil, cfg, nil, "binlog.000001", 1)

	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	msgs, end := decodeTraced(t, dec, parent, 1000)
	// BEGIN, the row change, END; the context row itself is not captured.
	if len(msgs) != 3 {
		t.Fatalf("a traced transaction of one row gave %d messages, want 3 (BEGIN, change, END)", len(msgs))
	}
	if end.Span == nil {
		t.Fatal("End.Span = nil for a transaction with a trace context, want its span")
	}
	sc := end.Span.SpanContext()
	if sc.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("span's trace = %s, want the writer's", sc.TraceID())
	}
	for _, m := range msgs {
		if len(m.Headers) != 1 || m.Headers[0].Key != HeaderTraceParent || string(m.Headers[0].Value) != tracing.Format(sc) {
			t.Errorf("message on %s has headers %v, want traceparent %s", m.Topic, m.Headers, tracing.Format(sc))
		}
	}
	end.Span.End()
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Name() != "cdc transaction" || spans[0].Parent().SpanID().String() != "b7ad6b7169203331" {
		t.Fatalf("ended spans = %v, want one cdc transaction span, child of the writer's", spans)
	}

	// The next transaction has no trace context: no span, no header.
	msgs, end = decodeTraced(t, dec, "", 2000)
	if end.Span != nil || len(msgs) != 3 {
		t.Fatalf("untraced transaction: span %v, %d messages, want none and 3", end.Span, len(msgs))
	}
	for _, m := range msgs {
		if len(m.Headers) != 0 {
			t.Errorf("untraced message on %s has headers %v, want none", m.Topic, m.Headers)
		}
	}

	// Tracing off: the context table is not read at all.
	stop(context.Background())
	dec = NewDecoder(NewEncoder(cfg, "mariadb", nil), nil, cfg, nil, "binlog.000001", 1)
	msgs, end = decodeTraced(t, dec, parent, 3000)
	if end.Span != nil || len(msgs) != 3 || len(msgs[1].Headers) != 0 {
		t.Fatalf("tracing off: span %v, %d messages, headers %v; want no span, 3 messages, no header", end.Span, len(msgs), msgs[1].Headers)
	}
}
