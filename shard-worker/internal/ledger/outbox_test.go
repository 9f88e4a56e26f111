package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/schema"
)

// tapped is an outbox row as a trigger copied it.
type tapped struct {
	id, aggregate, aggregateID, typ string
	payload                         map[string]any
}

// tapOutbox makes the shard keep a copy of every row inserted into the
// outbox (which the worker empties in the same transaction) and returns a
// function reading the copies in insertion order.
func tapOutbox(t *testing.T, root *sql.DB) func() []tapped {
	t.Helper()
	for _, q := range []string{
		`CREATE TABLE outbox_tap (seq INT AUTO_INCREMENT PRIMARY KEY, id CHAR(36), aggregatetype VARCHAR(255),
			aggregateid VARCHAR(255), type VARCHAR(255), payload LONGTEXT)`,
		`CREATE TRIGGER outbox_tap AFTER INSERT ON outbox FOR EACH ROW
			INSERT INTO outbox_tap (id, aggregatetype, aggregateid, type, payload) VALUES (NEW.id, NEW.aggregatetype, NEW.aggregateid, NEW.type, NEW.payload)`,
	} {
		if _, err := root.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return func() []tapped {
		t.Helper()
		rows, err := root.Query("SELECT id, aggregatetype, aggregateid, type, payload FROM outbox_tap ORDER BY seq")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []tapped
		for rows.Next() {
			var r tapped
			var p []byte
			if err := rows.Scan(&r.id, &r.aggregate, &r.aggregateID, &r.typ, &p); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(p, &r.payload); err != nil {
				t.Fatalf("payload %s: %v", p, err)
			}
			out = append(out, r)
		}
		return out
	}
}

// A batch writes its domain events into the outbox in its own transaction
// and leaves the table empty; the events match the rows the batch wrote.
// Expiring a pending return publishes its ReturnRejected the same way.
// The worker does this as its own least-privilege user.
func TestOutboxRowsOfABatch(t *testing.T) {
	inst := stacktest.MariaDB(t)
	root := stacktest.Database(t, inst, "shop", schema.Shard)
	l := New(stacktest.As(t, inst, "worker", "shop"), Config{Shard: 0, InitialBalance: 100000, PendingDelay: time.Hour, BulkLoad: true})
	tap := tapOutbox(t, root)
	ctx := context.Background()
	evs := []event.Prepared{
		price("p", 1, 1, "12.50"), restock("s", 1, 1, 10),
		buy("ok", 100, 7, 1, 1, 2), buy("poor", 101, 8, 1, 1, 9), buy("ok", 100, 7, 1, 1, 2),
		ret("early", 200, 7, 1, 1, 1),
		with(restock("bad", 1, 1, 1), func(e *event.Prepared) { e.Reject = "missing good_id" }),
	}
	st, err := l.Apply(ctx, evs, Progress{})
	if err != nil {
		t.Fatal(err)
	}
	var left int
	if err := root.QueryRow("SELECT COUNT(*) FROM outbox").Scan(&left); err != nil || left != 0 {
		t.Errorf("outbox holds %d rows (%v) after the batch, want none", left, err)
	}
	got := tap()
	var types []DomainType
	for _, r := range got {
		types = append(types, DomainType(r.typ))
		if r.aggregate != string(DomainType(r.typ).Aggregate()) {
			t.Errorf("%s has aggregatetype %s, want %s", r.typ, r.aggregate, DomainType(r.typ).Aggregate())
		}
		src := event.Source{File: r.payload["file"].(string), Line: int(r.payload["line"].(float64))}
		if r.id != EventID(src, DomainType(r.typ)) {
			t.Errorf("%s of %v has id %s, want %s", r.typ, src, r.id, EventID(src, DomainType(r.typ)))
		}
	}
	want := []DomainType{PriceChanged, StockChanged, OrderPlaced, OrderRejected, ReturnPending, LineRejected}
	if !slices.Equal(types, want) || st.Published != len(want) {
		t.Fatalf("outbox rows %v (stats %+v), want %v", types, st, want)
	}
	// OrderPlaced against the purchase and its debit.
	var price, amount string
	if err := root.QueryRow(`SELECT p.price_at_order, a.amount FROM purchase_history p
		JOIN account_transaction a ON a.idempotency_key = CONCAT('purchase:', p.order_id) WHERE p.order_id = 100`).Scan(&price, &amount); err != nil {
		t.Fatal(err)
	}
	if p := got[2].payload; got[2].aggregateID != "100" || p["price"] != price || p["amount"] != amount || p["stock_after"] != 8.0 {
		t.Errorf("OrderPlaced %s %v, want order 100 at %s for %s, stock 8 after", got[2].aggregateID, p, price, amount)
	}
	// OrderRejected with the reason of its events row.
	var reason string
	if err := root.QueryRow("SELECT reason FROM events WHERE event_key = 'poor'").Scan(&reason); err != nil {
		t.Fatal(err)
	}
	if p := got[3].payload; p["reason"] != reason || p["user_id"] != 8.0 {
		t.Errorf("OrderRejected %v, want user 8 with reason %q", p, reason)
	}

	// The pending return's delay runs out.
	l.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	n, err := l.ExpirePending(ctx)
	if err != nil || n != 1 {
		t.Fatalf("ExpirePending = %d, %v; want 1", n, err)
	}
	got = tap()
	if len(got) != len(want)+1 {
		t.Fatalf("%d outbox rows after the expiry, want %d", len(got), len(want)+1)
	}
	if err := root.QueryRow("SELECT reason FROM events WHERE event_key = 'early'").Scan(&reason); err != nil {
		t.Fatal(err)
	}
	last := got[len(got)-1]
	if last.typ != string(ReturnRejected) || last.aggregateID != "200" || last.payload["reason"] != reason || last.payload["was_pending"] != true {
		t.Errorf("after the expiry: %s %s %v, want ReturnRejected of order 200, was pending, with reason %q", last.typ, last.aggregateID, last.payload, reason)
	}
	if err := root.QueryRow("SELECT COUNT(*) FROM outbox").Scan(&left); err != nil || left != 0 {
		t.Errorf("outbox holds %d rows (%v) after the expiry, want none", left, err)
	}
}
