package store

import (
	"testing"

	"github.com/shopledger/shopledger/internal/consume/consumetest"
)

// BenchmarkConsume measures one consumer's apply rate: from the shop,
// shop_state and events topics pre-filled with 300,000 changes of 1,000
// shops (3 partitions each) into cache_db in batches of 5,000 (the
// default); Kafka fetch, decoding, dedupe and commit included. Run:
// go test -run '^$' -bench BenchmarkConsume -benchtime 1x ./cache/internal/store/
func BenchmarkConsume(b *testing.B) {
	defer func(n int) { shopsPerShard = n }(shopsPerShard)
	shopsPerShard = 500
	consumetest.Benchmark(b, subject, 300_000, 5_000)
}
