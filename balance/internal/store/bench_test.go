package store

import (
	"testing"

	"github.com/shopledger/shopledger/internal/consume/consumetest"
)

// BenchmarkConsume measures one consumer's apply rate: from a topic
// pre-filled with 300,000 account transaction changes of 10,000 users (3
// partitions, keyed by user) into balance_db in batches of 10,000 (the
// default); Kafka fetch, decoding, dedupe and commit included. Run:
// go test -run '^$' -bench BenchmarkConsume -benchtime 1x ./balance/internal/store/
func BenchmarkConsume(b *testing.B) {
	defer func(n int) { users = n }(users)
	users = 10_000
	consumetest.Benchmark(b, subject, 300_000, 10_000)
}
