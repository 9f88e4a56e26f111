package ledger

import (
	"context"
	"database/sql"
	"maps"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/internal/tracing"
	"github.com/shopledger/shopledger/schema"
)

// TestTraceContextInBinlog: a batch applied under a span records the
// span's traceparent in the transaction's first row change, the
// file_progress row (tracing.ContextTable), as the least-privilege worker
// user, with new rows written by LOAD DATA (worker.bulk_load, the
// default); a batch without a span records none.
func TestTraceContextInBinlog(t *testing.T) {
	inst := stacktest.MariaDB(t)
	stacktest.Database(t, inst, "shop", schema.Shard)
	l := New(stacktest.As(t, inst, "worker", "shop"), Config{InitialBalance: 100000, PendingDelay: time.Hour, BulkLoad: true})
	root := stacktest.As(t, inst, "root", "shop")
	stop := tracing.Use(tracetest.NewSpanRecorder(), 1, "test")
	defer stop(context.Background())
	ctx, span := tracing.Tracer().Start(context.Background(), "mysql-sender batch")
	if _, err := l.Apply(ctx, []event.Prepared{restock("a", 1, 1, 5)}, Progress{File: "20250101000000", Lines: 1}); err != nil {
		t.Fatal(err)
	}
	span.End()
	if _, err := l.Apply(context.Background(), []event.Prepared{restock("b", 1, 1, 5)}, Progress{File: "20250101000001", Lines: 1}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	err := sqldb.Each(context.Background(), root, "SELECT filename, COALESCE(trace_parent, '') FROM file_progress", func(r *sql.Rows) error {
		var f, tp string
		err := r.Scan(&f, &tp)
		got[f] = tp
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"20250101000000": tracing.Format(span.SpanContext()), "20250101000001": ""}
	if !maps.Equal(got, want) {
		t.Errorf("file_progress trace contexts = %v, want %v", got, want)
	}
	// First in its transaction's binlog: before any row of another table.
	var first string
	err = sqldb.Each(context.Background(), root, "SHOW BINLOG EVENTS", func(r *sql.Rows) error {
		var logName, eventType, info string
		var pos, serverID, end uint64
		if err := r.Scan(&logName, &pos, &eventType, &serverID, &end, &info); err != nil {
			return err
		}
		if eventType == "Table_map" && first == "" && !strings.Contains(info, "schema_migrations") && !strings.Contains(info, "(mysql.") {
			first = info
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(first, "(shop."+tracing.ContextTable+")") {
		t.Errorf("the first table a batch writes is %q, want %s", first, tracing.ContextTable)
	}
}
