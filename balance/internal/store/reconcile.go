package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/shopledger/shopledger/internal/sqldb"
)

// Reconcile compares balance_db with the shards' truth: for every user and
// shard, the sums and count of its account transactions, and for every user
// the totals over the shards. It returns one line per difference.
func (s *Store) Reconcile(ctx context.Context, shards []*sql.DB) ([]string, error) {
	type key struct {
		user  int64
		shard int
	}
	truth := map[key]Totals{}
	users := map[int64]Totals{}
	for i, db := range shards {
		err := sqldb.Each(ctx, db, `SELECT user_id, IFNULL(SUM(IF(type = 'credit', amount, 0)), 0), IFNULL(SUM(IF(type = 'debit', amount, 0)), 0), COUNT(*)
			FROM account_transaction GROUP BY user_id`, func(r *sql.Rows) error {
			var u int64
			var t Totals
			if err := r.Scan(&u, &t.Credits, &t.Debits, &t.TxCount); err != nil {
				return err
			}
			t.Balance = t.Credits - t.Debits
			truth[key{u, i}] = t
			sum := users[u]
			sum.Credits, sum.Debits, sum.TxCount = sum.Credits+t.Credits, sum.Debits+t.Debits, sum.TxCount+t.TxCount
			sum.Balance = sum.Credits - sum.Debits
			users[u] = sum
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("shard %d: %w", i, err)
		}
	}
	var diffs []string
	have := map[key]Totals{}
	err := sqldb.Each(ctx, s.db, "SELECT user_id, shard, balance, credits, debits, tx_count FROM shard_balance", func(r *sql.Rows) error {
		var k key
		var t Totals
		if err := r.Scan(&k.user, &k.shard, &t.Balance, &t.Credits, &t.Debits, &t.TxCount); err != nil {
			return err
		}
		have[k] = t
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("balance_db: %w", err)
	}
	for k, t := range truth {
		if h := have[k]; h != t {
			diffs = append(diffs, fmt.Sprintf("user %d shard %d: balance_db has %s, the shard has %s", k.user, k.shard, show(h), show(t)))
		}
	}
	for k, h := range have {
		if _, ok := truth[k]; !ok && h != (Totals{}) {
			diffs = append(diffs, fmt.Sprintf("user %d shard %d: balance_db has %s, the shard has no transaction", k.user, k.shard, show(h)))
		}
	}
	got := map[int64]Totals{}
	err = sqldb.Each(ctx, s.db, "SELECT user_id, balance, credits, debits, tx_count FROM balance", func(r *sql.Rows) error {
		var u int64
		var t Totals
		if err := r.Scan(&u, &t.Balance, &t.Credits, &t.Debits, &t.TxCount); err != nil {
			return err
		}
		got[u] = t
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("balance_db: %w", err)
	}
	for u, t := range users {
		if g := got[u]; g != t {
			diffs = append(diffs, fmt.Sprintf("user %d: balance_db has %s, the shards have %s", u, show(g), show(t)))
		}
	}
	for u, g := range got {
		if _, ok := users[u]; !ok {
			diffs = append(diffs, fmt.Sprintf("user %d: balance_db has %s, no shard has a transaction", u, show(g)))
		}
	}
	slices.Sort(diffs)
	return diffs, nil
}

func show(t Totals) string {
	return fmt.Sprintf("balance %s (credits %s, debits %s, %d transactions)", t.Balance, t.Credits, t.Debits, t.TxCount)
}
