package store

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/cdc/cdctest"
	"github.com/shopledger/shopledger/internal/consume"
	"github.com/shopledger/shopledger/internal/money"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/schema"
)

const topic = "shop.account_transaction"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// history is a generated set of account transactions on two shards, the
// change events the cdc-producer would publish for them, and the totals
// they must add up to.
type history struct {
	changes []cdctest.Change
	want    map[int64]*Totals
	perUser map[[2]int64]*Totals // (user, shard)
}

func generate(n, users int, seed uint64) *history {
	r := rand.New(rand.NewPCG(seed, 1))
	h := &history{want: map[int64]*Totals{}, perUser: map[[2]int64]*Totals{}}
	for i := range n {
		shard := i % 2
		id := int64(i/2 + 1)
		user := int64(r.IntN(users) + 1)
		amount := money.Cents(r.IntN(100_000) + 1)
		typ := "credit"
		if r.IntN(3) == 0 {
			typ = "debit"
		}
		h.changes = append(h.changes, cdctest.Change{Shard: shard, Table: "account_transaction", Op: "c", Pos: uint32(1000 + 100*i), Key: fmt.Sprint(user),
			After: map[string]any{"id": id, "user_id": user, "amount": amount.String(), "type": typ, "reason": "test", "idempotency_key": fmt.Sprint(i)}})
		for _, t := range []*Totals{ref(h.want, user), ref(h.perUser, [2]int64{user, int64(shard)})} {
			if typ == "credit" {
				t.Credits += amount
			} else {
				t.Debits += amount
			}
			t.Balance = t.Credits - t.Debits
			t.TxCount++
		}
	}
	return h
}

func ref[K comparable](m map[K]*Totals, k K) *Totals {
	if m[k] == nil {
		m[k] = &Totals{}
	}
	return m[k]
}

// check fails t unless every user's totals and per-shard totals in s are
// the history's.
func (h *history) check(t *testing.T, s *Store) {
	t.Helper()
	for u, want := range h.want {
		got, err := s.User(context.Background(), u)
		if err != nil {
			t.Fatalf("user %d: %v", u, err)
		}
		if got.Totals != *want {
			t.Errorf("user %d: %+v, want %+v", u, got.Totals, want)
		}
		for _, sh := range got.Shards {
			if w := h.perUser[[2]int64{u, int64(sh.Shard)}]; w == nil || sh.Totals != *w {
				t.Errorf("user %d shard %d: %+v, want %+v", u, sh.Shard, sh.Totals, w)
			}
		}
	}
	p, err := s.List(context.Background(), 1000, 0, "user_id")
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != int64(len(h.want)) {
		t.Errorf("%d users, want %d", p.Total, len(h.want))
	}
}

func newStore(t *testing.T) (*Store, *sql.DB) {
	inst := stacktest.MariaDB(t)
	stacktest.Database(t, inst, "balance_db", schema.Balance)
	db := stacktest.As(t, inst, "balance", "balance_db")
	return New(db, quiet), db
}

// Applying the changes in order, then again, then shuffled in other
// batches with repeats and snapshot reads of the same rows, gives the
// history's totals, each transaction counted once.
func TestApplyIsIdempotentAndOrderFree(t *testing.T) {
	h := generate(3000, 40, 1)
	s, db := newStore(t)
	ctx := context.Background()
	msgs := cdctest.Messages(topic, h.changes)
	for start := 0; start < len(msgs); start += 700 {
		res, err := s.Apply(ctx, msgs[start:min(start+700, len(msgs))])
		if err != nil {
			t.Fatal(err)
		}
		if res.Duplicates != 0 || res.Invalid != 0 {
			t.Fatalf("first delivery: %+v", res)
		}
	}
	h.check(t, s)

	// A replay: the same changes, shuffled, with repeats, and snapshot
	// reads (op r, another position) of the same rows.
	var again []cdctest.Change
	for _, c := range h.changes {
		again = append(again, c, c)
		r := c
		r.Op, r.Pos = "r", 1
		again = append(again, r)
	}
	rand.New(rand.NewPCG(2, 2)).Shuffle(len(again), func(i, j int) { again[i], again[j] = again[j], again[i] })
	res, err := s.Apply(ctx, cdctest.Messages(topic, again))
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 0 || res.Duplicates != len(again) {
		t.Errorf("replay: %+v, want all %d duplicates", res, len(again))
	}
	h.check(t, s)
	var n int
	db.QueryRow("SELECT COUNT(*) FROM applied_transaction").Scan(&n)
	if n != len(h.changes) {
		t.Errorf("%d applied transactions recorded, want %d", n, len(h.changes))
	}

	// The shuffled changes alone, into an empty database, give the same.
	s2, _ := newStore(t)
	shuffled := append([]cdctest.Change(nil), h.changes...)
	rand.New(rand.NewPCG(3, 3)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	if _, err := s2.Apply(ctx, cdctest.Messages(topic, shuffled)); err != nil {
		t.Fatal(err)
	}
	h.check(t, s2)
}

// Changes that cannot be applied are counted invalid and skipped; the rest
// of their batch is applied.
func TestApplySkipsInvalidChanges(t *testing.T) {
	s, _ := newStore(t)
	good := cdctest.Change{Shard: 0, Table: "account_transaction", Op: "c", Pos: 100,
		After: map[string]any{"id": 1, "user_id": 7, "amount": "10.50", "type": "credit"}}
	bad := []cdctest.Change{
		{Shard: 0, Table: "account_transaction", Op: "u", Pos: 200, Before: good.After, After: good.After},
		{Shard: 0, Table: "account_transaction", Op: "c", Pos: 300, After: map[string]any{"id": 2, "user_id": 7, "amount": "1", "type": "refund"}},
		{Shard: 0, Table: "account_transaction", Op: "c", Pos: 400, After: map[string]any{"id": 3, "user_id": 7, "amount": "1.234", "type": "credit"}},
		{Shard: 0, Table: "user", Op: "c", Pos: 500, After: map[string]any{"id": 7}},
	}
	msgs := cdctest.Messages(topic, append(bad, good))
	msgs = append(msgs, msgs[0])
	msgs[len(msgs)-1].Value = []byte("not json")
	res, err := s.Apply(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 1 || res.Invalid != len(bad)+1 {
		t.Errorf("result %+v, want 1 applied and %d invalid", res, len(bad)+1)
	}
	u, err := s.User(context.Background(), 7)
	if err != nil {
		t.Fatal(err)
	}
	if u.Balance != 1050 || u.TxCount != 1 {
		t.Errorf("user 7: %+v", u.Totals)
	}
}

// Two members of one group share a topic whose changes were published
// shuffled over its partitions; after a reset of the group's offsets a
// member consumes everything again and nothing changes.
func TestGroupSharesShuffledTopicAndResetChangesNothing(t *testing.T) {
	h := generate(4000, 40, 4)
	s, db := newStore(t)
	brokers := cdctest.Broker(t, 3, topic)
	r := rand.New(rand.NewPCG(5, 5))
	msgs := cdctest.Messages(topic, h.changes)
	r.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	msgs = append(msgs, msgs[:500]...) // at-least-once: some twice
	cdctest.Publish(t, brokers, msgs, func(int) int { return r.IntN(3) })

	g := cdctest.NewGroup(t, brokers, "balance-test", []string{topic}, s.Stages())
	g.Start()
	g.Start()
	g.WaitHandled(len(msgs), 2*time.Minute)
	g.Stop()
	h.check(t, s)
	before := dump(t, db)

	n, err := consume.ResetOffsets(context.Background(), brokers, "balance-test", []string{topic})
	if err != nil || n != 3 {
		t.Fatalf("reset: %d partitions, %v", n, err)
	}
	g2 := cdctest.NewGroup(t, brokers, "balance-test", []string{topic}, s.Stages())
	g2.Start()
	g2.WaitHandled(len(msgs), 2*time.Minute)
	g2.Stop()
	if after := dump(t, db); after != before {
		t.Errorf("balances changed after consuming everything again:\nbefore %s\nafter  %s", before, after)
	}
}

// dump renders every balance and shard balance.
func dump(t *testing.T, db *sql.DB) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{"SELECT user_id, balance, credits, debits, tx_count FROM balance ORDER BY user_id",
		"SELECT user_id, shard, balance, credits, debits, tx_count FROM shard_balance ORDER BY user_id, shard"} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			rows.Scan(ptrs...)
			for _, v := range vals {
				b.Write(v)
				b.WriteByte(' ')
			}
			b.WriteByte(';')
		}
		rows.Close()
	}
	return b.String()
}
