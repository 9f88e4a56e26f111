package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/schema"
)

func newLedger(t *testing.T) (*Ledger, *sql.DB) {
	t.Helper()
	inst := stacktest.MariaDB(t)
	stacktest.Database(t, inst, "shop", schema.Shard)
	db := stacktest.As(t, inst, "worker", "shop")
	return New(db, Config{Shard: 0, InitialBalance: 100000, PendingDelay: time.Hour, BulkLoad: true}), db
}

// Lines that once stopped a shard for good (the insert failed, so the batch
// was retried forever) are recorded with their reason and the shard goes
// on: a rejection reason with multi-byte characters across the column's
// limit, and a restock that would overflow the stock.
func TestBadLinesDoNotStopTheShard(t *testing.T) {
	l, db := newLedger(t)
	ctx := context.Background()
	long := with(restock("long", 1, 1, 1), func(e *event.Prepared) {
		e.Reject = `sub_event_type "` + strings.Repeat("é", 300) + `" is not one of restock, defect, loss`
	})
	bad := with(restock("bad", 1, 1, 1), func(e *event.Prepared) { e.Reject = "bad byte \xff here" })
	evs := []event.Prepared{long, bad, restock("max", 1, 1, math.MaxInt64), restock("more", 1, 1, 1), restock("other", 1, 2, 3)}
	st, err := l.Apply(ctx, evs, Progress{})
	if err != nil {
		t.Fatalf("Apply = %v, want the batch recorded", err)
	}
	if st.Applied != 2 || st.Rejected != 3 {
		t.Errorf("Apply stats = %+v, want 2 applied, 3 rejected", st)
	}
	var count int64
	if err := db.QueryRow("SELECT count FROM shop WHERE id = 1 AND good_id = 1").Scan(&count); err != nil || count != math.MaxInt64 {
		t.Errorf("stock of shop 1 good 1 = %d (%v), want %d", count, err, int64(math.MaxInt64))
	}
	rows, err := db.Query("SELECT event_key, reason FROM events WHERE status = 'rejected' ORDER BY source_line")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want := map[string]string{"long": "invalid: sub_event_type \"ééé", "bad": "invalid: bad byte \uFFFD here", "more": "stock would exceed"}
	for rows.Next() {
		var key, reason string
		if err := rows.Scan(&key, &reason); err != nil {
			t.Fatal(err)
		}
		if !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > 255 || !strings.HasPrefix(reason, want[key]) && !strings.Contains(reason, want[key]) {
			t.Errorf("reason of %s = %q, want valid UTF-8 of at most 255 characters with %q", key, reason, want[key])
		}
		delete(want, key)
	}
	if len(want) > 0 {
		t.Errorf("no rejected events row for %v", want)
	}
}

// price_at_order is never the amount charged: the purchase_history row and
// the debit carry the shop's price.
func TestPriceAtOrderIsNotTrusted(t *testing.T) {
	l, db := newLedger(t)
	ctx := context.Background()
	free := with(buy("free", 100, 7, 1, 1, 2), func(e *event.Prepared) { e.Price = cents("0") })
	fair := with(buy("fair", 101, 7, 1, 1, 2), func(e *event.Prepared) { e.Price = cents("12.50") })
	if _, err := l.Apply(ctx, []event.Prepared{price("p", 1, 1, "12.50"), restock("s", 1, 1, 10), free, fair}, Progress{}); err != nil {
		t.Fatal(err)
	}
	var orders int
	var paid, balance string
	if err := db.QueryRow("SELECT COUNT(*), SUM(price_at_order) FROM purchase_history").Scan(&orders, &paid); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT balance FROM user WHERE id = 7").Scan(&balance); err != nil {
		t.Fatal(err)
	}
	if orders != 1 || paid != "12.50" || balance != "975.00" {
		t.Errorf("%d orders at %s, balance %s; want only the fair one at 12.50, balance 975.00", orders, paid, balance)
	}
}

// Writing new rows with LOAD DATA LOCAL INFILE (BulkLoad) leaves the
// shard exactly as multi-row INSERTs do: generated files of every kind of
// event, applied in batches, on two databases of one server.
func TestBulkLoadWritesWhatInsertsWrite(t *testing.T) {
	inst := stacktest.MariaDB(t)
	ctx := context.Background()
	dbs := map[bool]*sql.DB{}
	for _, load := range []bool{false, true} {
		name := map[bool]string{false: "shop_insert", true: "shop"}[load]
		dbs[load] = stacktest.Database(t, inst, name, schema.Shard)
		l := New(dbs[load], Config{Shard: 0, InitialBalance: 100000, PendingDelay: time.Hour, BulkLoad: load})
		for i, stem := range []string{"20251102000000", "20251102000001"} {
			evs := prepared(t, stem, 4000, uint64(i+1))
			for k := 0; k < len(evs); k += 700 {
				end := min(k+700, len(evs))
				if _, err := l.Apply(ctx, evs[k:end], Progress{File: stem, Lines: end}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, q := range []string{
		"SELECT event_key, event_type, shop_id, user_id, order_id, good_id, timestamp, shard, status, reason, source_file, source_line FROM events ORDER BY source_file, source_line",
		"SELECT id, name, balance FROM user ORDER BY id",
		"SELECT id, good_id, count, active, price FROM shop ORDER BY id, good_id",
		"SELECT shop_id, active FROM shop_state ORDER BY shop_id",
		"SELECT id, name, price FROM good ORDER BY id",
		"SELECT user_id, amount, type, reason, idempotency_key FROM account_transaction ORDER BY idempotency_key",
		"SELECT order_id, user_id, good_id, shop_id, qty, price_at_order, returned_qty, refunded FROM purchase_history ORDER BY order_id",
		"SELECT order_id, qty, amount, event_key FROM order_return ORDER BY event_key",
		"SELECT source_file, source_line, order_id, shop_id, detail FROM pending_return ORDER BY source_file, source_line",
		"SELECT filename, applied_lines FROM file_progress ORDER BY filename",
		"SELECT COUNT(*) FROM outbox",
	} {
		insert, load := dump(t, dbs[false], q), dump(t, dbs[true], q)
		if len(load) == 0 && !strings.Contains(q, "COUNT") {
			t.Errorf("%s: no rows", q)
		}
		if !slices.Equal(insert, load) {
			t.Errorf("%s: with LOAD DATA %d rows, with INSERTs %d; first difference at %d", q, len(load), len(insert), firstDiff(insert, load))
		}
	}
}

// dump returns every row of query as text.
func dump(t *testing.T, db *sql.DB, query string) []string {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(vals))
	}
	return out
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
