package ledger

import (
	"context"
	"database/sql"
	"math"
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
	return New(db, Config{Shard: 0, InitialBalance: 100000, PendingDelay: time.Hour}), db
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
