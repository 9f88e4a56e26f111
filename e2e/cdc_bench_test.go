package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopledger/shopledger/internal/localstack"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/internal/topics"
	"github.com/shopledger/shopledger/schema"
)

// BenchmarkCDC streams one transaction of 1,000,000 row inserts from a
// shard's binlog to Kafka-acknowledged with the real cdc-producer binary
// (timed from the commit to the checkpoint past it, which the producer
// saves only once Kafka acknowledged every message before it), and reads
// the same binlog with go-mysql alone (decode only, the producer's parse
// options) for comparison. It reports both rates, their ratio, the
// producer's peak RSS and the CPU time the producer, the broker (kfake, in
// this process) and the MariaDB server spent on the transaction: on a
// shared machine the rates vary with the other load, the CPU times much
// less.
//
// With SHOPLEDGER_BENCH_PROFILE=dir the producer serves pprof and the
// benchmark writes into dir its CPU profile from the commit on
// (SHOPLEDGER_BENCH_PROFILE_SECONDS, default 10), a heap profile one
// second into the transaction and its allocation profile after it, and a
// CPU profile of this process (the embedded broker) over the transaction.
//
//	go test -run '^$' -bench BenchmarkCDC -benchtime 1x ./e2e
//	SHOPLEDGER_BENCH_PROFILE=/tmp/prof go test -run '^$' -bench BenchmarkCDC -benchtime 1x ./e2e; go tool pprof -top /tmp/prof/cdc-producer.cpu
func BenchmarkCDC(b *testing.B) {
	const rows = 1_000_000
	prof := stacktest.BenchProfiling(b, 10)
	env := prof.Env()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		inst := stacktest.MariaDB(b)
		db := stacktest.Database(b, inst, "shop", schema.Shard)
		ctx := context.Background()
		// The broker keeps its log in files, as make run's does: without
		// a data folder kfake keeps each segment in one growing slice,
		// whose copying cost it three times the CPU on this volume.
		broker, err := localstack.StartBroker(ctx, 0, b.TempDir(), topics.DefaultSettings.CDC(topics.DefaultPrefix, topics.CDCTables)...)
		if err != nil {
			b.Fatal(err)
		}
		var before, after string
		db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&before)
		logs, _ := os.Create(filepath.Join(b.TempDir(), "producer.log"))
		port := freePort(b)
		p := &localstack.Process{Name: "cdc-producer-0", Bin: filepath.Join(binDir, "cdc-producer"), Args: []string{"--shard", "0"},
			Env: append([]string{"DATABASE_ADDR=" + inst.Addr(), "KAFKA_BROKERS=" + strings.Join(broker.Addrs(), ","),
				fmt.Sprintf("SERVER_PORT=%d", port), "LOGGING_LEVEL=info"}, env...), Out: logs}
		if err := p.Start(); err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := localstack.WaitHTTP(rctx, fmt.Sprintf("http://127.0.0.1:%d/ready", port)); err != nil {
			b.Fatal(err)
		}
		cancel()
		if _, err := db.Exec(fmt.Sprintf(`INSERT INTO good (id, name, brand, price)
			SELECT seq, CONCAT('good-', seq), 'acme', seq %% 10000 / 100 FROM seq_1_to_%d`, rows)); err != nil {
			b.Fatal(err)
		}
		db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&after)
		cpu0 := cpuTimes(b, p, inst.PID())
		b.StartTimer()
		start := time.Now()
		wctx, stopWatch := context.WithCancel(ctx)
		reached := watchCheckpoint(b, wctx, broker.Addrs(), after)
		var profiles sync.WaitGroup
		var brokerProfile *os.File
		if prof.Dir != "" {
			profiles.Go(func() {
				prof.Fetch(b, port, prof.CPU(), "cdc-producer.cpu")
			})
			if brokerProfile, err = os.Create(filepath.Join(prof.Dir, "broker.cpu")); err != nil {
				b.Fatal(err)
			}
			if err := pprof.StartCPUProfile(brokerProfile); err != nil {
				b.Fatal(err)
			}
			profiles.Go(func() {
				time.Sleep(time.Second)
				prof.Fetch(b, port, "heap", "cdc-producer.heap")
			})
		}
		peak := 0
		tick := time.NewTicker(20 * time.Millisecond)
		var took time.Duration
	wait:
		for {
			select {
			case at := <-reached:
				took = at.Sub(start)
				break wait
			case <-tick.C:
			}
			if kb := peakRSS(p); kb > peak {
				peak = kb
			}
			if time.Since(start) > 5*time.Minute {
				syscall.Kill(p.Pid(), syscall.SIGQUIT)
				time.Sleep(time.Second)
				log, _ := os.ReadFile(logs.Name())
				b.Fatalf("the producer did not checkpoint the transaction within 5 minutes; its log:\n%s", log)
			}
		}
		b.StopTimer()
		cpu := cpuTimes(b, p, inst.PID()).sub(cpu0)
		tick.Stop()
		stopWatch()
		if kb := peakRSS(p); kb > peak {
			peak = kb
		}
		if prof.Dir != "" {
			pprof.StopCPUProfile()
			brokerProfile.Close()
			profiles.Wait()
			prof.Fetch(b, port, "allocs", "cdc-producer.allocs")
			b.Logf("profiles in %s", prof.Dir)
		}
		p.Stop(10 * time.Second)
		broker.Close()
		// go-mysql alone on the same binlog: decode, publish nothing.
		raw := rawDecode(b, inst.Addr(), before, rows)
		rate := float64(rows) / took.Seconds()
		b.ReportMetric(rate, "rows/s")
		b.ReportMetric(raw, "raw-decode-rows/s")
		b.ReportMetric(rate/raw*100, "%-of-raw")
		b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
		b.ReportMetric(cpu.producer.Seconds(), "producer-CPU-s")
		b.ReportMetric(cpu.bench.Seconds(), "broker-CPU-s")
		b.ReportMetric(cpu.server.Seconds(), "server-CPU-s")
		b.Logf("1,000,000-row transaction: producer %.0f rows/s to Kafka-acknowledged (%s from commit to checkpoint), go-mysql decode alone %.0f rows/s (%.0f%%), producer peak RSS %d MiB; CPU meanwhile: producer %s, broker (this process) %s, MariaDB %s",
			rate, took.Round(time.Millisecond), raw, rate/raw*100, peak/1024, cpu.producer.Round(time.Millisecond),
			cpu.bench.Round(time.Millisecond), cpu.server.Round(time.Millisecond))
	}
}

// rawDecode reads the binlog from gtid with go-mysql until it has seen rows
// row images and returns the rate. Its syncer decodes as the producer's
// does (capture's stream.go: the same parse and read-ahead settings), so
// that it decodes exactly what the producer has go-mysql decode; it only
// counts the rows.
func rawDecode(b *testing.B, addr, gtid string, rows int) float64 {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	s := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{ServerID: 999, Flavor: "mariadb", Host: host,
		Port: uint16(p), User: "root", Logger: slog.New(slog.DiscardHandler),
		TimestampStringLocation: time.UTC, RenderJSONAsMySQLText: true, EventCacheCount: 64})
	defer s.Close()
	set, _ := mysql.ParseMariadbGTIDSet(gtid)
	start := time.Now()
	st, err := s.StartSyncGTID(set)
	if err != nil {
		b.Fatal(err)
	}
	seen := 0
	for seen < rows {
		ev, err := st.GetEvent(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if re, ok := ev.Event.(*replication.RowsEvent); ok {
			seen += len(re.Rows)
		}
	}
	return float64(rows) / time.Since(start).Seconds()
}

// cdcCPU is the CPU time the producer, this process (the embedded broker,
// mostly) and the MariaDB server had spent at one moment.
type cdcCPU struct{ producer, bench, server time.Duration }

func cpuTimes(b *testing.B, p *localstack.Process, server int) cdcCPU {
	var c cdcCPU
	var err error
	if c.producer, err = stacktest.ProcessCPU(p.Pid()); err != nil {
		b.Fatal(err)
	}
	if c.server, err = stacktest.ProcessCPU(server); err != nil {
		b.Fatal(err)
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	c.bench = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return c
}

func (c cdcCPU) sub(d cdcCPU) cdcCPU {
	return cdcCPU{producer: c.producer - d.producer, bench: c.bench - d.bench, server: c.server - d.server}
}

// peakRSS reads the process's high-water resident set (VmHWM) in KiB.
func peakRSS(p *localstack.Process) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb
		}
	}
	return 0
}

// watchCheckpoint follows shard 0's checkpoints from the start of the
// topic and sends the time the first one at gtid arrived.
func watchCheckpoint(b *testing.B, ctx context.Context, brokers []string, gtid string) <-chan time.Time {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("shop.cdc-checkpoints"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(10*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	reached := make(chan time.Time, 1)
	go func() {
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			now := time.Now()
			found := false
			fs.EachRecord(func(r *kgo.Record) {
				var cp struct {
					GTID string `json:"gtid"`
				}
				if string(r.Key) == "shard-0" && json.Unmarshal(r.Value, &cp) == nil && cp.GTID == gtid {
					found = true
				}
			})
			if found {
				reached <- now
				return
			}
		}
	}()
	return reached
}
