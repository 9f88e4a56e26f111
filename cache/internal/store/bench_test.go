package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/cdc/cdctest"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/schema"
)

// BenchmarkConsume measures one consumer's apply rate: from three topics
// pre-filled with 300,000 shop, shop_state and events changes of 1,000
// shops (3 partitions each) into cache_db, Kafka fetch, decoding, dedupe
// and commit included. Run:
// go test -run '^$' -bench BenchmarkConsume -benchtime 1x ./cache/internal/store/
func BenchmarkConsume(b *testing.B) {
	h := generate(300_000, 1000, 11)
	n := len(h.msgs)
	brokers := cdctest.Broker(b, 3, topics...)
	cdctest.Publish(b, brokers, h.msgs, func(i int) int { return i % 3 })
	inst := stacktest.MariaDB(b)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		db := stacktest.Database(b, inst, fmt.Sprintf("cache_bench_%d", i), schema.Cache)
		s := New(db, quiet)
		g := cdctest.NewGroup(b, brokers, fmt.Sprintf("bench-%d", i), topics, s.Stages())
		g.Config.BatchSize = 5000
		b.StartTimer()
		start := time.Now()
		g.Start()
		g.WaitHandled(n, 10*time.Minute)
		el := time.Since(start)
		g.Stop()
		b.ReportMetric(float64(n)/el.Seconds(), "events/s")
	}
}
