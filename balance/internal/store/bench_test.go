package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/cdc/cdctest"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/schema"
)

// BenchmarkConsume measures one consumer's apply rate: from a topic
// pre-filled with 300,000 account transaction changes of 10,000 users (3
// partitions, keyed by user) into balance_db in batches of 10,000 (the
// default); Kafka fetch, decoding, dedupe and commit included. Run:
// go test -run '^$' -bench BenchmarkConsume -benchtime 1x ./balance/internal/store/
func BenchmarkConsume(b *testing.B) {
	const n = 300_000
	h := generate(n, 10_000, 11)
	brokers := cdctest.Broker(b, 3, topic)
	msgs := cdctest.Messages(topic, h.changes)
	cdctest.Publish(b, brokers, msgs, func(i int) int { return int(h.changes[i].After["user_id"].(int64) % 3) })
	inst := stacktest.MariaDB(b)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		db := stacktest.Database(b, inst, fmt.Sprintf("balance_bench_%d", i), schema.Balance)
		s := New(db, quiet)
		g := cdctest.NewGroup(b, brokers, fmt.Sprintf("bench-%d", i), []string{topic}, s.Stages())
		g.Config.BatchSize = 10000
		b.StartTimer()
		start := time.Now()
		g.Start()
		g.WaitHandled(n, 10*time.Minute)
		el := time.Since(start)
		g.Stop()
		b.ReportMetric(float64(n)/el.Seconds(), "events/s")
	}
}
