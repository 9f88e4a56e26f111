package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/eventgen"
	"github.com/shopledger/shopledger/internal/pipeline"
)

// BenchmarkPipeline measures a 100,000-event file from ingest done to
// committed shard rows, through the real splitter and shard workers on two
// MariaDB shards. Per shard it reports the worker's rate (lines on the shard
// over the time from the shard's split being done to its mysql-sender done)
// and, for the whole file, the end-to-end rate including the split.
//
//	make bench-pipeline
func BenchmarkPipeline(b *testing.B) {
	const events = 100_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := startStack(b, 2, nil)
		gen := eventgen.New(eventgen.World{Shops: 200, Goods: 500, Users: 5000}, uint64(i+1))
		at := time.Date(2025, 11, 2, 0, 0, 0, 0, time.UTC)
		warm := gen.Batch("20251102000000", at, 2000)
		s.produce("20251102000000", splitLines(warm))
		s.waitFinished(time.Minute)
		big := "20251102000001"
		lines := splitLines(gen.Batch(big, at.Add(time.Second), events))
		b.StartTimer()
		start := time.Now()
		s.produce(big, lines)
		split := map[int]time.Duration{}
		done := map[int]time.Duration{}
		for len(done) < 2 {
			f, err := s.api.File(context.Background(), big)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range f.Shards {
				if _, ok := split[r.Shard]; !ok && r.ShardSplitterStatus == pipeline.StatusDone {
					split[r.Shard] = time.Since(start)
				}
				if _, ok := done[r.Shard]; !ok && r.MySQLSenderStatus == pipeline.StatusDone {
					done[r.Shard] = time.Since(start)
				}
				if r.MySQLSenderStatus == pipeline.StatusFailed || r.ShardWorkerStatus == pipeline.StatusFailed {
					b.Fatalf("shard %d failed", r.Shard)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		total := time.Since(start)
		b.StopTimer()
		for sh := range 2 {
			n, _ := strconv.Atoi(s.scalar(sh, "SELECT COUNT(*) FROM events WHERE source_file = ?", big))
			rate := float64(n) / (done[sh] - split[sh]).Seconds()
			b.ReportMetric(rate, fmt.Sprintf("events/s/shard%d", sh))
			b.Logf("shard %d: %d lines, split done at %s, applied by %s: %.0f events/s", sh, n, split[sh].Round(time.Millisecond),
				done[sh].Round(time.Millisecond), rate)
		}
		logStageTimes(b, s.logs, big)
		b.ReportMetric(float64(events)/total.Seconds(), "events/s/file")
		b.Logf("whole file: %d events in %s: %.0f events/s end to end", events, total.Round(time.Millisecond), float64(events)/total.Seconds())
	}
}

// logStageTimes prints how long each stage took for file, from the
// components' own log lines.
func logStageTimes(b *testing.B, logs, file string) {
	data, err := os.ReadFile(logs)
	if err != nil {
		return
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "file="+file) && (strings.Contains(l, "took=") || strings.Contains(l, "file applied")) {
			b.Log(l)
		}
	}
}
