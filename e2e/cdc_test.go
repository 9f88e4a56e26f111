package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopledger/shopledger/internal/localstack"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/internal/topics"
	"github.com/shopledger/shopledger/schema"
)

// kill -9 of the cdc-producer, three times, while a client keeps committing
// transactions, on a real Apache Kafka broker: afterwards every committed
// row change is in Kafka, the checkpoint in its compacted topic points past
// them, and the only duplicates are repeats, with the same source position,
// of what was published after the last saved checkpoint when the producer
// died: at most the group of transactions being saved and the group
// waiting behind it.
func TestKillProducerUnderWrites(t *testing.T) {
	inst := stacktest.MariaDB(t)
	db := stacktest.Database(t, inst, "shop", schema.Shard)
	ctx := context.Background()
	kafka := stacktest.Kafka(t, 1)
	if err := topics.Ensure(ctx, kafka.Brokers(), topics.DefaultSettings.CDC(topics.DefaultPrefix, topics.CDCTables)...); err != nil {
		t.Fatal(err)
	}
	brokers := strings.Join(kafka.Brokers(), ",")
	logs, _ := os.Create(filepath.Join(t.TempDir(), "producer.log"))
	// A group of transactions ends at the first transaction end at or past
	// groupRows rows, and the writer's transactions have up to maxTxn.
	const groupRows, maxTxn = 7, 13
	port := freePort(t)
	p := &localstack.Process{Name: "cdc-producer-0", Bin: filepath.Join(binDir, "cdc-producer"), Args: []string{"--shard", "0"},
		Env: []string{"DATABASE_ADDR=" + inst.Addr(), "KAFKA_BROKERS=" + brokers, fmt.Sprintf("CAPTURE_GROUP_ROWS=%d", groupRows),
			fmt.Sprintf("SERVER_PORT=%d", port)},
		Out: &localstack.PrefixWriter{W: logs}, Restart: true}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(10 * time.Second)
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("producer log:\n%s", b)
		}
	})

	// Changes before the snapshot would be folded into it; start writing once
	// the producer streams.
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if err := localstack.WaitHTTP(rctx, fmt.Sprintf("http://127.0.0.1:%d/ready", port)); err != nil {
		t.Fatal(err)
	}
	cancel()

	// The writer: transactions of 1..12 inserts and an update, as fast as
	// the shard takes them.
	var mu sync.Mutex
	changes := 0 // row changes committed
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		id := 0
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			tx, err := db.Begin()
			if err != nil {
				done <- err
				return
			}
			n := 1 + rand.IntN(maxTxn-1)
			for range n {
				id++
				if _, err := tx.Exec("INSERT INTO good (id, name, price) VALUES (?, ?, 1.00)", id, fmt.Sprint("g", id)); err != nil {
					done <- err
					return
				}
			}
			if _, err := tx.Exec("UPDATE good SET price = price + 1 WHERE id = ?", 1+rand.IntN(id)); err != nil {
				done <- err
				return
			}
			if err := tx.Commit(); err != nil {
				done <- err
				return
			}
			mu.Lock()
			changes += n + 1
			mu.Unlock()
		}
	}()
	for range 3 {
		time.Sleep(time.Duration(1500+rand.IntN(1000)) * time.Millisecond)
		p.Kill() // restarted by its supervisor a second later
	}
	time.Sleep(2 * time.Second)
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	want := changes
	mu.Unlock()

	// Read shop.good until every committed change is there.
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Brokers()...), kgo.ConsumeTopics("shop.good"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	type pos struct {
		file     string
		pos, row float64
	}
	seen := map[pos][]string{}
	messages := 0
	deadline := time.Now().Add(60 * time.Second)
	for len(seen) < want && time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			var v map[string]any
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatalf("message %s: %v", r.Value, err)
			}
			src := v["source"].(map[string]any)
			k := pos{src["file"].(string), src["pos"].(float64), src["row"].(float64)}
			for _, f := range []string{"ts_ms", "ts_us", "ts_ns"} {
				delete(v, f) // processing time differs between sends
			}
			b, _ := json.Marshal(v)
			seen[k] = append(seen[k], string(b))
			messages++
		})
	}
	if len(seen) != want {
		t.Fatalf("Kafka has %d distinct row changes, the shard committed %d", len(seen), want)
	}
	dups := 0
	for k, vs := range seen {
		for _, v := range vs[1:] {
			if v != vs[0] {
				t.Errorf("position %v sent twice with different content:\n%s\n%s", k, vs[0], v)
			}
		}
		dups += len(vs) - 1
	}
	// Each kill may repeat at most two groups.
	if limit := 3 * 2 * (groupRows - 1 + maxTxn); dups > limit {
		t.Errorf("%d duplicate messages after 3 kills, want at most %d", dups, limit)
	}
	t.Logf("%d row changes committed, %d messages, %d duplicates", want, messages, dups)
	checkCheckpoint(t, kafka.Brokers(), 0, db)
}

// checkCheckpoint waits until the shard's latest checkpoint in the
// compacted checkpoint topic is at the shard's current GTID position, and
// checks the topic is compacted and kept forever.
func checkCheckpoint(t *testing.T, brokers []string, shard int, db *sql.DB) {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...)}
	topic := topics.Checkpoints(topics.DefaultPrefix)
	cfg, err := cl.DescribeConfigs(context.Background(), &kafka.DescribeConfigsRequest{
		Resources: []kafka.DescribeConfigRequestResource{{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
			ConfigNames: []string{"cleanup.policy", "retention.ms"}}}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range cfg.Resources {
		for _, e := range r.ConfigEntries {
			got[e.ConfigName] = e.ConfigValue
		}
	}
	if got["cleanup.policy"] != "compact" || got["retention.ms"] != "-1" {
		t.Errorf("checkpoint topic configs %v, want compacted and kept forever", got)
	}
	var want string
	if err := db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&want); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		last := latest(t, brokers, topic, fmt.Sprintf("shard-%d", shard))
		if last["gtid"] == want && last["snapshotting"] == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("latest checkpoint of shard %d = %v, want GTID %s", shard, last, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// latest reads partition 0 of topic to its end and returns the value of
// the last record with key, as a JSON object.
func latest(t *testing.T, brokers []string, topic, key string) map[string]any {
	t.Helper()
	conn, err := kafka.DialLeader(context.Background(), "tcp", brokers[0], topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	first, end, err := conn.ReadOffsets()
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	r.SetOffset(first)
	var last map[string]any
	for off := first; off < end; {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := r.ReadMessage(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Key) == key {
			last = nil // each record whole
			json.Unmarshal(m.Value, &last)
		}
		off = m.Offset + 1
	}
	return last
}

// checkCDC waits until topic shop.<table> holds, for every shard, one
// creation per row of the table on that shard, repeats of a source
// position counted once, and fails the test if it does not within timeout.
func (s *stack) checkCDC(table string, timeout time.Duration) {
	s.t.Helper()
	want := map[int]int{}
	for i := range s.shards {
		n, err := strconv.Atoi(s.scalar(i, "SELECT COUNT(*) FROM `"+table+"`"))
		if err != nil {
			s.t.Fatal(err)
		}
		want[i] = n
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.ConsumeTopics("shop."+table),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	type pos struct {
		shard    int
		file     string
		pos, row float64
	}
	seen := map[pos]bool{}
	got := map[int]int{}
	deadline := time.Now().Add(timeout)
	for {
		done := true
		for i, n := range want {
			if got[i] != n {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("shop.%s has creations per shard %v, the shards have rows %v", table, got, want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			if r.Value == nil {
				return // the tombstone after a delete
			}
			var v struct {
				Op     string `json:"op"`
				Source struct {
					Shard int     `json:"shard"`
					File  string  `json:"file"`
					Pos   float64 `json:"pos"`
					Row   float64 `json:"row"`
				} `json:"source"`
			}
			if err := json.Unmarshal(r.Value, &v); err != nil {
				s.t.Fatalf("message %s: %v", r.Value, err)
			}
			k := pos{v.Source.Shard, v.Source.File, v.Source.Pos, v.Source.Row}
			if (v.Op == "c" || v.Op == "r") && !seen[k] {
				seen[k] = true
				got[v.Source.Shard]++
			}
		})
	}
}
