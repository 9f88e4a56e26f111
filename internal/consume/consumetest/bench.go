package consumetest

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/consume"
	"github.com/shopledger/shopledger/internal/localstack"
	"github.com/shopledger/shopledger/internal/topics"
)

// Benchmark measures one consumer member's apply rate: n changes of
// s.Mutate's kind pre-published to a real Kafka-protocol broker (3
// partitions per topic), consumed from the first offset into a fresh
// database in batches of batch, fetch to commit, and reports events/s.
func Benchmark[C any](b *testing.B, s Subject[C], n, batch int) {
	r := rand.New(rand.NewPCG(11, 12))
	sh, changes := s.start(r, 100)
	for len(changes) < n {
		changes = append(changes, s.history(r, sh, 1000)...)
	}
	var names []string
	specs := []topics.Spec{{Name: "bench.dead-letters", Partitions: 1}}
	for _, t := range s.Tables {
		names = append(names, s.Topic(t))
		specs = append(specs, topics.Spec{Name: s.Topic(t), Partitions: partitions})
	}
	br, err := localstack.StartBroker(context.Background(), 0, "", specs...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(br.Close)
	for _, st := range sh.streams(changes, partitions) {
		publish(b, br.Addrs(), st.Topic, st.Partition, st.Msgs)
	}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		h, db := s.New(b)
		cfg := consume.Config{Brokers: br.Addrs(), Group: "bench-" + string(rune('a'+i)), Topics: names, BatchSize: batch,
			BatchWait: 20 * time.Millisecond, SessionTimeout: 6 * time.Second, DeadLetterTopic: "bench.dead-letters", DeadLetters: topics.DefaultSettings}
		b.StartTimer()
		start := time.Now()
		g := runGroup(b, cfg, db, h, 1)
		g.wait(b, len(changes))
		el := time.Since(start)
		g.stop()
		b.ReportMetric(float64(len(changes))/el.Seconds(), "events/s")
	}
}
