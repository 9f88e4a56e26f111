package store

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shopledger/shopledger/internal/cdc/cdctest"
	"github.com/shopledger/shopledger/internal/consume"
	"github.com/shopledger/shopledger/internal/consume/consumetest"
	"github.com/shopledger/shopledger/internal/localdb"
	"github.com/shopledger/shopledger/internal/money"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/schema"
)

const topic = "shop.account_transaction"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newStore(t testing.TB) (*Store, *sql.DB) { return newStoreOn(t, stacktest.MariaDB(t)) }

// newStoreOn returns a store over a fresh balance_db on inst, connected as
// the balance service's own user.
func newStoreOn(t testing.TB, inst *localdb.Instance) (*Store, *sql.DB) {
	stacktest.Database(t, inst, "balance_db", schema.Balance)
	db := stacktest.As(t, inst, "balance", "balance_db")
	return New(db, quiet), db
}

// users is how many users the generated transactions spread over.
var users = 60

// subject is balance under the consumers' conformance suite: its state is
// every user's totals, per shard and over all, from the shards'
// account_transaction rows.
var subject = consumetest.Subject[Change]{
	Tables: []string{"account_transaction"},
	Topic:  func(string) string { return topic },
	PK:     func(_ string, r consumetest.Row) string { return fmt.Sprint(r["id"]) },
	Key:    func(_ string, r consumetest.Row) string { return fmt.Sprintf(`{"user_id":%v}`, r["user_id"]) },
	New: func(t testing.TB, inst *localdb.Instance) (consume.Handler[Change], *sql.DB) {
		s, db := newStoreOn(t, inst)
		return s, db
	},
	Mutate: func(r *rand.Rand, s *consumetest.Shards, shard int) []consumetest.Mutation {
		var out []consumetest.Mutation
		for range 1 + r.IntN(3) {
			typ := "credit"
			if r.IntN(3) == 0 {
				typ = "debit"
			}
			out = append(out, consumetest.Mutation{Table: "account_transaction", After: consumetest.Row{"id": s.NextID(shard, "account_transaction"),
				"user_id": 1 + r.IntN(users), "amount": money.Cents(1 + r.IntN(100_000)).String(), "type": typ, "reason": "test"}})
		}
		return out
	},
	Want: func(s *consumetest.Shards) string {
		type key struct{ user, shard int64 }
		per := map[key]*Totals{}
		for shard := range s.N() {
			for _, row := range s.Rows(shard, "account_transaction") {
				a, _ := money.Parse(row["amount"].(string))
				for _, k := range []key{{int64(row["user_id"].(int)), int64(shard)}, {int64(row["user_id"].(int)), -1}} {
					t := per[k]
					if t == nil {
						t = &Totals{}
						per[k] = t
					}
					if row["type"] == "credit" {
						t.Credits += a
					} else {
						t.Debits += a
					}
					t.Balance, t.TxCount = t.Credits-t.Debits, t.TxCount+1
				}
			}
		}
		var lines []string
		for k, t := range per {
			lines = append(lines, fmt.Sprintf("%d %d %s %s %s %d", k.user, k.shard, t.Balance, t.Credits, t.Debits, t.TxCount))
		}
		slices.Sort(lines)
		return strings.Join(lines, "\n")
	},
	Got: func(t testing.TB, db *sql.DB) string { return dump(t, db) },
}

// dump renders every balance (shard -1) and shard balance as the subject's
// Want does.
func dump(t testing.TB, db *sql.DB) string {
	t.Helper()
	var lines []string
	for _, q := range []string{"SELECT user_id, -1, balance, credits, debits, tx_count FROM balance",
		"SELECT user_id, shard, balance, credits, debits, tx_count FROM shard_balance"} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var user, shard, n int64
			var bal, cr, db money.Cents
			if err := rows.Scan(&user, &shard, &bal, &cr, &db, &n); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, fmt.Sprintf("%d %d %s %s %s %d", user, shard, bal, cr, db, n))
		}
		rows.Close()
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func TestConformance(t *testing.T) { consumetest.Run(t, subject) }

// Changes that cannot be applied are dead letters with their reason; the
// rest of their batch is applied.
func TestDecodeRefusesWhatCannotBeApplied(t *testing.T) {
	s, db := newStore(t)
	good := cdctest.Change{Shard: 0, Table: "account_transaction", Op: "c", Pos: 100,
		After: map[string]any{"id": 1, "user_id": 7, "amount": "10.50", "type": "credit"}}
	bad := map[string]cdctest.Change{
		"append-only": {Shard: 0, Table: "account_transaction", Op: "u", Pos: 200, Before: good.After, After: good.After},
		"neither credit nor debit": {Shard: 0, Table: "account_transaction", Op: "c", Pos: 300,
			After: map[string]any{"id": 2, "user_id": 7, "amount": "1", "type": "refund"}},
		"money":            {Shard: 0, Table: "account_transaction", Op: "c", Pos: 400, After: map[string]any{"id": 3, "user_id": 7, "amount": "1.234", "type": "credit"}},
		"does not consume": {Shard: 0, Table: "user", Op: "c", Pos: 500, After: map[string]any{"id": 7}},
	}
	var changes []cdctest.Change
	for _, why := range slices.Sorted(maps.Keys(bad)) {
		changes = append(changes, bad[why])
	}
	msgs := cdctest.Messages(topic, append(changes, good))
	msgs = append(msgs, msgs[0])
	msgs[len(msgs)-1].Value = []byte("not json")
	b := consume.Decode[Change](s, msgs)
	res, err := consume.Apply(context.Background(), db, s, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 1 || res.Dead != len(bad)+1 {
		t.Errorf("result %+v, want 1 applied and %d dead letters", res, len(bad)+1)
	}
	u, err := s.User(context.Background(), 7)
	if err != nil {
		t.Fatal(err)
	}
	if u.Balance != 1050 || u.TxCount != 1 {
		t.Errorf("user 7: %+v", u.Totals)
	}
}
