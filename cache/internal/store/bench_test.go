package store

import (
	"context"
	"database/sql"
	"testing"

	"github.com/shopledger/shopledger/internal/cdc/cdctest"
	"github.com/shopledger/shopledger/internal/consume/consumetest"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// BenchmarkConsume measures one consumer's apply rate: from the shop,
// shop_state and events topics pre-filled with 300,000 changes of 1,000
// shops (3 partitions each) into cache_db in batches of 5,000 (the
// default); Kafka fetch, decoding, dedupe and commit included. In the same
// run, on the same server, its limit (limit-rows/s) and the ratio: the same
// changes as one upsert row per key they touch, nothing else (see
// consumetest.Benchmark).
//
//	go test -run '^$' -bench BenchmarkConsume -benchtime 1x -count 6 ./cache/internal/store/ | benchstat -
func BenchmarkConsume(b *testing.B) {
	defer func(n int) { shopsPerShard = n }(shopsPerShard)
	shopsPerShard = 500
	consumetest.Benchmark(b, subject, 300_000, 5_000, limit)
}

// limit is the least a consumer of these changes must write, per batch one
// multi-row upsert per table (in statements of sqldb.MaxRows rows, as the
// consumer's), a row per key a change touches: a shop change adds its
// count's difference to the good's stock and sets its price, a shop_state
// change sets the shop open or closed, an events change moves its row from
// its old (type, status) counter to its new one. Nothing is summed per key
// first, no versions are compared, no shard is kept.
var limit = consumetest.Limit{
	Tables: []string{
		"CREATE TABLE stock (shop_id BIGINT NOT NULL, good_id BIGINT NOT NULL, count BIGINT NOT NULL, price DECIMAL(18,2) NULL, PRIMARY KEY (shop_id, good_id))",
		"CREATE TABLE shop_status (shop_id BIGINT NOT NULL PRIMARY KEY, active BOOLEAN NOT NULL)",
		`CREATE TABLE event_count (shop_id BIGINT NOT NULL, event_type TINYINT NOT NULL, status VARCHAR(16) CHARACTER SET ascii NOT NULL,
			n BIGINT NOT NULL, PRIMARY KEY (shop_id, event_type, status))`,
	},
	Write: func(ctx context.Context, tx *sql.Tx, changes []cdctest.Change) error {
		stock := sqldb.Bulk{Head: "INSERT INTO stock (shop_id, good_id, count, price) VALUES ",
			Tail: " ON DUPLICATE KEY UPDATE count = count + VALUES(count), price = COALESCE(VALUES(price), price)", Cols: 4}
		status := sqldb.Bulk{Head: "INSERT INTO shop_status (shop_id, active) VALUES ",
			Tail: " ON DUPLICATE KEY UPDATE active = VALUES(active)", Cols: 2}
		counts := sqldb.Bulk{Head: "INSERT INTO event_count (shop_id, event_type, status, n) VALUES ",
			Tail: " ON DUPLICATE KEY UPDATE n = n + VALUES(n)", Cols: 4}
		for _, c := range changes {
			b, a := c.Before, c.After
			switch c.Table {
			case "shop":
				k, delta, price := a, int64(0), any(nil)
				if b != nil {
					delta -= b["count"].(int64)
				}
				if a != nil {
					delta += a["count"].(int64)
					price = a["price"]
				} else {
					k = b
				}
				stock.Add(k["id"], k["good_id"], delta, price)
			case "shop_state":
				status.Add(a["shop_id"], a["active"])
			case "events":
				for _, r := range []struct {
					row consumetest.Row
					n   int
				}{{b, -1}, {a, 1}} {
					if r.row == nil {
						continue
					}
					shop := r.row["shop_id"]
					if shop == nil {
						shop = NoShop
					}
					counts.Add(shop, r.row["event_type"], r.row["status"], r.n)
				}
			}
		}
		for _, up := range []*sqldb.Bulk{&stock, &status, &counts} {
			if err := up.Exec(ctx, tx); err != nil {
				return err
			}
		}
		return nil
	},
}
