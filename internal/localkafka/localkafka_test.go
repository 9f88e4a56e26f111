package localkafka_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/localkafka"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/internal/topics"
)

func TestDefaultDir(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ env, want string }{
		{"", filepath.Join(wd, "..", "..", ".tools", "kafka-"+localkafka.Version)},
		{"/opt/tools", "/opt/tools/kafka-" + localkafka.Version},
	} {
		t.Setenv("SHOPLEDGER_TOOLS_DIR", tc.env)
		if got, err := localkafka.DefaultDir(); err != nil || got != filepath.Clean(tc.want) {
			t.Errorf("DefaultDir() with SHOPLEDGER_TOOLS_DIR=%q = %q, %v, want %q", tc.env, got, err, filepath.Clean(tc.want))
		}
	}
}

// TestInstall installs into a fresh folder from three installers at once:
// one runs Maven, the others wait and reuse its install, as does a later
// call; a half-finished install (no marker) is redone.
func TestInstall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "kafka")
	results := make([]bool, 3)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			var err error
			if results[i], err = localkafka.Install(ctx, dir, t.Logf); err != nil {
				t.Errorf("Install(%s) = %v", dir, err)
			}
		})
	}
	wg.Wait()
	if n := count(results); n != 1 {
		t.Fatalf("concurrent Install(%s) installed %d times, want 1", dir, n)
	}
	if _, err := os.Stat(filepath.Join(dir, "libs", "kafka_2.13-"+localkafka.Version+".jar")); err != nil {
		t.Fatalf("no kafka jar after Install: %v", err)
	}
	if again, err := localkafka.Install(ctx, dir, t.Logf); again || err != nil {
		t.Errorf("second Install(%s) = %v, %v, want false, nil", dir, again, err)
	}
	if err := os.Remove(filepath.Join(dir, ".installed")); err != nil {
		t.Fatal(err)
	}
	if redo, err := localkafka.Install(ctx, dir, t.Logf); !redo || err != nil {
		t.Errorf("Install(%s) of a half-finished install = %v, %v, want true, nil", dir, redo, err)
	}
}

func count(bs []bool) (n int) {
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// TestBrokerKeepsMessages writes to one broker with acks=all, crashes it,
// restarts it on the same data and reads the same messages back.
func TestBrokerKeepsMessages(t *testing.T) {
	c := stacktest.Kafka(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const topic = "harness"
	if err := topics.Ensure(ctx, c.Brokers(), topics.Spec{Name: topic, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 10 {
		want = append(want, fmt.Sprintf("message %d", i))
	}
	produce(ctx, t, c.Brokers(), topic, want...)
	if got := consume(ctx, t, c.Brokers(), topic, len(want)); !slices.Equal(got, want) {
		t.Fatalf("read back %q, want %q", got, want)
	}

	c.Kill(0)
	start := time.Now()
	if err := c.Restart(ctx, 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted after a crash in %s", time.Since(start).Round(10*time.Millisecond))
	if got := consume(ctx, t, c.Brokers(), topic, len(want)); !slices.Equal(got, want) {
		t.Fatalf("after crash and restart read %q, want %q", got, want)
	}
	produce(ctx, t, c.Brokers(), topic, "after restart")
	if got := consume(ctx, t, c.Brokers(), topic, len(want)+1); got[len(want)] != "after restart" {
		t.Fatalf("after restart read %q, want %q last", got, "after restart")
	}
}

// TestCluster starts three nodes, checks that each lists all three brokers,
// and that a crashed node rejoins: every node lists it again.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three Kafka nodes")
	}
	c := stacktest.Kafka(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	checkBrokers(ctx, t, c, 3)
	c.Kill(2)
	start := time.Now()
	if err := c.Restart(ctx, 2); err != nil {
		t.Fatal(err)
	}
	t.Logf("node 3 rejoined after a crash in %s", time.Since(start).Round(10*time.Millisecond))
	checkBrokers(ctx, t, c, 3)
}

// checkBrokers waits up to 10 s for every node to list want brokers: after a
// crash, the others replace the node's old incarnation a moment after the
// node serves again.
func checkBrokers(ctx context.Context, t *testing.T, c *localkafka.Cluster, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, addr := range c.Brokers() {
		client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 5 * time.Second}
		for {
			md, err := client.Metadata(ctx, &kafka.MetadataRequest{})
			if err != nil {
				t.Fatalf("Metadata from %s: %v", addr, err)
			}
			if len(md.Brokers) == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Metadata from %s lists %d brokers (%v), want %d", addr, len(md.Brokers), md.Brokers, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func produce(ctx context.Context, t *testing.T, brokers []string, topic string, values ...string) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: 10 * time.Millisecond}
	defer w.Close()
	msgs := make([]kafka.Message, len(values))
	for i, v := range values {
		msgs[i] = kafka.Message{Value: []byte(v)}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("write to %s: %v", topic, err)
	}
}

// consume reads the first n messages of partition 0 of topic.
func consume(ctx context.Context, t *testing.T, brokers []string, topic string, n int) []string {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var got []string
	for len(got) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %s after %d messages: %v", topic, len(got), err)
		}
		got = append(got, string(m.Value))
	}
	return got
}

// TestStartFails checks that a cluster that cannot come up says why at once
// and leaves nothing running.
func TestStartFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	home := install(ctx, t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		name string
		opts localkafka.Options
		want error
	}{
		{"port taken", localkafka.Options{Ports: []int{taken.Addr().(*net.TCPAddr).Port}}, localkafka.ErrPortTaken},
		{"bad config", localkafka.Options{Properties: map[string]string{"authorizer.class.name": "no.such.Authorizer"}}, localkafka.ErrExited},
		{"not installed", localkafka.Options{Home: t.TempDir()}, localkafka.ErrNotInstalled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.Dir = t.TempDir()
			if o.Home == "" {
				o.Home = home
			}
			if c, err := localkafka.Start(ctx, o); !errors.Is(err, tc.want) {
				if c != nil {
					c.Stop()
				}
				t.Fatalf("Start(%+v) = %v, want %v", o, err, tc.want)
			}
		})
	}
}

func install(ctx context.Context, t *testing.T) string {
	t.Helper()
	home, err := localkafka.DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := localkafka.Install(ctx, home, t.Logf); err != nil {
		t.Fatal(err)
	}
	return home
}
