package store

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/shopledger/shopledger/internal/cdc/cdctest"
	"github.com/shopledger/shopledger/internal/consume/consumetest"
	"github.com/shopledger/shopledger/internal/money"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// BenchmarkConsume measures one consumer's apply rate: from a topic
// pre-filled with 300,000 account transaction changes of 10,000 users (3
// partitions, keyed by user) into balance_db in batches of 10,000 (the
// default); Kafka fetch, decoding, dedupe and commit included. In the same
// run, on the same server, its limit (limit-rows/s) and the ratio: the same
// changes as one upsert row each adding the amount to the user's balance,
// nothing else (see consumetest.Benchmark).
//
//	go test -run '^$' -bench BenchmarkConsume -benchtime 1x -count 6 ./balance/internal/store/ | benchstat -
func BenchmarkConsume(b *testing.B) {
	defer func(n int) { users = n }(users)
	users = 10_000
	consumetest.Benchmark(b, subject, 300_000, 10_000, limit)
}

// limit is the least a consumer of account transactions must write: per
// change, its signed amount added to its user's balance, one multi-row
// upsert per batch (in statements of sqldb.MaxRows rows, as the consumer's).
// The changes are not summed per user first: the consumer does that, the
// raw upsert does not.
var limit = consumetest.Limit{
	Tables: []string{"CREATE TABLE balance (user_id BIGINT NOT NULL PRIMARY KEY, balance DECIMAL(20,2) NOT NULL)"},
	Write: func(ctx context.Context, tx *sql.Tx, changes []cdctest.Change) error {
		up := sqldb.Bulk{Head: "INSERT INTO balance (user_id, balance) VALUES ",
			Tail: " ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance)", Cols: 2}
		for _, c := range changes {
			a, err := money.Parse(fmt.Sprint(c.After["amount"]))
			if err != nil {
				return err
			}
			if c.After["type"] == "debit" {
				a = -a
			}
			up.Add(c.After["user_id"], a.String())
		}
		return up.Exec(ctx, tx)
	},
}
