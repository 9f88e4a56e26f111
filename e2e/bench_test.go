package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/eventgen"
	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/stacktest"
)

// BenchmarkPipeline measures a 100,000-event file from ingest done to
// committed shard rows, through the real splitter and shard workers on two
// MariaDB shards. Per shard it reports the worker's rate (lines on the shard
// over the time from the shard's split being done to its mysql-sender done)
// and, for the whole file, the end-to-end rate including the split; the
// time of each stage for the file, from the components' logs (split-s,
// prepare-s/shardN for the shard-worker stage, send-s/shardN for the
// mysql-sender stage).
//
// Where the time goes, per event of the file: the CPU of each shard's
// MariaDB (srv-ns/event/shardN), of each worker process
// (worker-ns/event/shardN), of the splitter and of the control server
// (splitter_db and pipeline_db), and the binlog bytes each shard wrote.
// There is no single limit for the whole pipeline: the two workers, two
// shard servers, the splitter and the control server share the machine's
// cores, so their CPU per event is the budget to read.
//
// With SHOPLEDGER_BENCH_PROFILE=dir, the components serve pprof and the
// benchmark writes into dir a CPU profile of the splitter and of each
// worker over the big file (SHOPLEDGER_BENCH_PROFILE_SECONDS, default 20,
// from the file's ingest-done on) and their allocation profiles after it.
//
//	make bench-pipeline
//	SHOPLEDGER_BENCH_PROFILE=/tmp/prof make bench-pipeline; go tool pprof -top /tmp/prof/shard-worker-0.cpu
func BenchmarkPipeline(b *testing.B) {
	const events = 100_000
	prof := stacktest.BenchProfiling(b, 20)
	env := prof.Env()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := startStack(b, 2, nil, env...)
		gen := eventgen.New(eventgen.World{Shops: 200, Goods: 500, Users: 5000}, uint64(i+1))
		at := time.Date(2025, 11, 2, 0, 0, 0, 0, time.UTC)
		warm := gen.Batch("20251102000000", at, 2000)
		s.produce("20251102000000", splitLines(warm))
		s.waitFinished(time.Minute)
		big := "20251102000001"
		lines := splitLines(gen.Batch(big, at.Add(time.Second), events))
		use := s.usage()
		var profiles sync.WaitGroup
		if prof.Dir != "" {
			for name, port := range s.profiled() {
				profiles.Go(func() {
					prof.Fetch(b, port, prof.CPU(), name+".cpu")
				})
			}
		}
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
		spent := s.usage().sub(use)
		for sh := range 2 {
			n, _ := strconv.Atoi(s.scalar(sh, "SELECT COUNT(*) FROM events WHERE source_file = ?", big))
			rate := float64(n) / (done[sh] - split[sh]).Seconds()
			b.ReportMetric(rate, fmt.Sprintf("events/s/shard%d", sh))
			b.Logf("shard %d: %d lines, split done at %s, applied by %s: %.0f events/s", sh, n, split[sh].Round(time.Millisecond),
				done[sh].Round(time.Millisecond), rate)
			per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(n) }
			b.ReportMetric(per(spent.shards[sh].ServerCPU), fmt.Sprintf("srv-ns/event/shard%d", sh))
			b.ReportMetric(per(spent.procs[fmt.Sprintf("shard-worker-%d", sh)]), fmt.Sprintf("worker-ns/event/shard%d", sh))
			b.ReportMetric(float64(spent.shards[sh].Status["Binlog_bytes_written"])/float64(n), fmt.Sprintf("binlog-B/event/shard%d", sh))
		}
		b.ReportMetric(float64(spent.procs["shard-splitter"].Nanoseconds())/events, "splitter-ns/event")
		b.ReportMetric(float64(spent.control.ServerCPU.Nanoseconds())/events, "control-srv-ns/event")
		reportStageTimes(b, s.logs, big)
		b.ReportMetric(float64(events)/total.Seconds(), "events/s/file")
		b.Logf("whole file: %d events in %s: %.0f events/s end to end", events, total.Round(time.Millisecond), float64(events)/total.Seconds())
		if prof.Dir != "" {
			profiles.Wait()
			for name, port := range s.profiled() {
				prof.Fetch(b, port, "allocs", name+".allocs")
			}
			b.Logf("profiles in %s", prof.Dir)
		}
	}
}

// stackUsage is the CPU (and server status) the stack's servers and
// pipeline processes had spent at one moment.
type stackUsage struct {
	shards  []stacktest.Usage
	control stacktest.Usage
	procs   map[string]time.Duration
}

func (s *stack) usage() stackUsage {
	s.t.Helper()
	ctx := context.Background()
	u := stackUsage{procs: map[string]time.Duration{}}
	for i, inst := range s.dbs.Shards {
		m, err := stacktest.Measure(ctx, inst, s.shards[i])
		if err != nil {
			s.t.Fatal(err)
		}
		u.shards = append(u.shards, m)
	}
	cpu, err := stacktest.ProcessCPU(s.dbs.Control.PID())
	if err != nil {
		s.t.Fatal(err)
	}
	u.control.ServerCPU = cpu
	for name, p := range s.procs {
		if cpu, err := stacktest.ProcessCPU(p.Pid()); err == nil {
			u.procs[name] = cpu
		}
	}
	return u
}

func (u stackUsage) sub(v stackUsage) stackUsage {
	d := stackUsage{procs: map[string]time.Duration{}}
	for i := range u.shards {
		d.shards = append(d.shards, u.shards[i].Sub(v.shards[i]))
	}
	d.control.ServerCPU = u.control.ServerCPU - v.control.ServerCPU
	for name, cpu := range u.procs {
		d.procs[name] = cpu - v.procs[name]
	}
	return d
}

// profiled are the processes the benchmark profiles, by name, with their
// HTTP ports.
func (s *stack) profiled() map[string]int {
	out := map[string]int{"shard-splitter": s.ep.SplitterPort}
	for i, port := range s.ep.WorkerPorts {
		out[fmt.Sprintf("shard-worker-%d", i)] = port
	}
	return out
}

// reportStageTimes reports how long each stage took for file, from the
// components' own log lines (took=): split-s, and per shard prepare-s
// (the shard-worker stage) and send-s (the mysql-sender stage). Metrics,
// not log lines: the testing package keeps only a benchmark's first ten.
func reportStageTimes(b *testing.B, logs, file string) {
	data, err := os.ReadFile(logs)
	if err != nil {
		b.Errorf("stage times: %v", err)
		return
	}
	took := regexp.MustCompile(`component=(\S+) .*file=` + regexp.QuoteMeta(file) + ` .*took=(\S+)`)
	for _, l := range strings.Split(string(data), "\n") {
		m := took.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		d, err := time.ParseDuration(m[2])
		if err != nil {
			continue
		}
		switch component := m[1]; {
		case component == "shard-splitter":
			b.ReportMetric(d.Seconds(), "split-s")
		case strings.HasPrefix(component, "shard-worker-"):
			shard := strings.TrimPrefix(component, "shard-worker-")
			if strings.Contains(l, "stage="+string(pipeline.StageShardWorker)+" ") {
				b.ReportMetric(d.Seconds(), "prepare-s/shard"+shard)
			} else if strings.Contains(l, "stage="+string(pipeline.StageMySQLSender)+" ") {
				b.ReportMetric(d.Seconds(), "send-s/shard"+shard)
			}
		}
	}
}
