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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/shopledger/shopledger/internal/localstack"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/internal/topics"
	"github.com/shopledger/shopledger/schema"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkCDC streams one transaction of 1,000,000 row inserts from a
// shard's binlog to Kafka-acknowledged with the real cdc-producer binary
// (timed from the commit to the checkpoint past it), and reads the same
// binlog with go-mysql alone (decode only) for comparison. It reports both
// rates, their ratio and the producer's peak RSS.
//
//	go test -run '^$' -bench BenchmarkCDC -benchtime 1x ./e2e
func BenchmarkCDC(b *testing.B) {
	const rows = 1_000_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		inst := stacktest.MariaDB(b)
		db := stacktest.Database(b, inst, "shop", schema.Shard)
		ctx := context.Background()
		broker, err := localstack.StartBroker(ctx, 0, "", topics.DefaultSettings.CDC(topics.DefaultPrefix, topics.CDCTables)...)
		if err != nil {
			b.Fatal(err)
		}
		var before, after string
		db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&before)
		logs, _ := os.Create(filepath.Join(b.TempDir(), "producer.log"))
		port := freePort(b)
		p := &localstack.Process{Name: "cdc-producer-0", Bin: filepath.Join(binDir, "cdc-producer"), Args: []string{"--shard", "0"},
			Env: []string{"DATABASE_ADDR=" + inst.Addr(), "KAFKA_BROKERS=" + strings.Join(broker.Addrs(), ","),
				fmt.Sprintf("SERVER_PORT=%d", port), "LOGGING_LEVEL=info"}, Out: logs}
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
		b.StartTimer()
		start := time.Now()
		peak := 0
		for {
			if kb := peakRSS(p); kb > peak {
				peak = kb
			}
			if lastCheckpointGTID(b, broker.Addrs()) == after {
				break
			}
			if time.Since(start) > 5*time.Minute {
				syscall.Kill(p.Pid(), syscall.SIGQUIT)
				time.Sleep(time.Second)
				log, _ := os.ReadFile(logs.Name())
				b.Fatalf("the producer did not checkpoint the transaction within 5 minutes; its log:\n%s", log)
			}
			time.Sleep(50 * time.Millisecond)
		}
		took := time.Since(start)
		b.StopTimer()
		if kb := peakRSS(p); kb > peak {
			peak = kb
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
		b.Logf("1,000,000-row transaction: producer %.0f rows/s to Kafka-acknowledged (%s from commit to checkpoint), go-mysql decode alone %.0f rows/s (%.0f%%), producer peak RSS %d MiB",
			rate, took.Round(time.Millisecond), raw, rate/raw*100, peak/1024)
	}
}

// rawDecode reads the binlog from gtid until it has seen rows row images and
// returns the rate.
func rawDecode(b *testing.B, addr, gtid string, rows int) float64 {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	s := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{ServerID: 999, Flavor: "mariadb", Host: host,
		Port: uint16(p), User: "root", Logger: slog.New(slog.DiscardHandler)})
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

// lastCheckpointGTID returns the GTID set of shard 0's latest checkpoint.
func lastCheckpointGTID(b *testing.B, brokers []string) string {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("shop.cdc-checkpoints"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var gtid string
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return gtid
		}
		fs.EachRecord(func(r *kgo.Record) {
			var cp struct {
				GTID string `json:"gtid"`
			}
			if string(r.Key) == "shard-0" && json.Unmarshal(r.Value, &cp) == nil {
				gtid = cp.GTID
			}
		})
	}
}
