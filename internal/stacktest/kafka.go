package stacktest

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/localkafka"
)

// kafkaHome is the Kafka install, made once per test binary.
var kafkaHome struct {
	once sync.Once
	dir  string
	err  error
}

// installKafka installs Apache Kafka into localkafka.DefaultDir the first
// time a test of this binary asks; later calls reuse the outcome.
func installKafka(ctx context.Context, t testing.TB) string {
	t.Helper()
	kafkaHome.once.Do(func() {
		if kafkaHome.dir, kafkaHome.err = localkafka.DefaultDir(); kafkaHome.err == nil {
			_, kafkaHome.err = localkafka.Install(ctx, kafkaHome.dir, t.Logf)
		}
	})
	if kafkaHome.err != nil {
		t.Fatalf("install Apache Kafka: %v", kafkaHome.err)
	}
	return kafkaHome.dir
}

// kafkaToolsHome is the install of Kafka's command-line tools, made once per
// test binary.
var kafkaToolsHome struct {
	once sync.Once
	dir  string
	err  error
}

// KafkaTools installs Apache Kafka's command-line tools into
// localkafka.DefaultToolsDir the first time a test of this binary asks, and
// returns their home for localkafka.Tool.
func KafkaTools(t testing.TB) string {
	t.Helper()
	kafkaToolsHome.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if kafkaToolsHome.dir, kafkaToolsHome.err = localkafka.DefaultToolsDir(); kafkaToolsHome.err == nil {
			_, kafkaToolsHome.err = localkafka.InstallTools(ctx, kafkaToolsHome.dir, t.Logf)
		}
	})
	if kafkaToolsHome.err != nil {
		t.Fatalf("install Apache Kafka's tools: %v", kafkaToolsHome.err)
	}
	return kafkaToolsHome.dir
}

// kafkaTestProperties shorten the broker session from 9 s: the controller
// refuses a crashed node's new registration until its old session expires,
// and tests crash nodes on purpose.
var kafkaTestProperties = map[string]string{
	"broker.heartbeat.interval.ms": "500",
	"broker.session.timeout.ms":    "3000",
}

// Kafka starts a fresh Apache Kafka cluster of nodes KRaft nodes on free
// ports for t and stops it at cleanup. Its data lives in a temporary
// directory, removed at cleanup after the broker log tails are printed when
// the test failed.
func Kafka(t testing.TB, nodes int) *localkafka.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	home := installKafka(ctx, t)
	var c *localkafka.Cluster
	var dir string
	for attempt := 0; ; attempt++ {
		var err error
		if dir, err = os.MkdirTemp("", "shopledger-kafka-"); err != nil {
			t.Fatal(err)
		}
		c, err = localkafka.Start(ctx, localkafka.Options{Name: "test-kafka", Home: home, Dir: dir, Nodes: nodes, Properties: kafkaTestProperties})
		if err == nil {
			break
		}
		os.RemoveAll(dir)
		// Free ports can be taken by someone else before a node binds them.
		retry := errors.Is(err, localkafka.ErrPortTaken) || errors.Is(err, localkafka.ErrExited)
		if !retry || attempt == 2 {
			t.Fatalf("start Apache Kafka: %v", err)
		}
	}
	t.Logf("Apache Kafka %s, %d node(s) at %s", c.Version(), nodes, strings.Join(c.Brokers(), ","))
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Logf("stop Apache Kafka: %v", err)
		}
		if t.Failed() {
			for i := range nodes {
				t.Logf("%s tail:\n%s", c.LogPath(i), c.LogTail(i, 40))
			}
		}
		os.RemoveAll(dir)
	})
	return c
}
