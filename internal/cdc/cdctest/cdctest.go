// Package cdctest builds change events like the cdc-producer's, publishes
// them to chosen partitions, and runs consumer-group members over them, for
// the consumers' tests.
package cdctest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/cdc"
	"github.com/shopledger/shopledger/internal/consume"
	"github.com/shopledger/shopledger/internal/localstack"
	"github.com/shopledger/shopledger/internal/topics"
)

// Change describes one change event.
type Change struct {
	Shard         int
	Table, Op     string
	Pos           uint32 // in binlog.000001
	Row           int
	Before, After map[string]any
	Key           string
}

// Value renders the change as the cdc-producer's message value.
func (c Change) Value() []byte {
	v, err := json.Marshal(cdc.Envelope[map[string]any]{Before: ptr(c.Before), After: ptr(c.After), Op: c.Op, TsMs: 1,
		Source: cdc.Source{Connector: "mysql", Name: "shop", DB: "shop", Table: c.Table, File: "binlog.000001", Pos: c.Pos,
			Row: c.Row, Shard: c.Shard, TsMs: 1_760_000_000_000, Snapshot: fmt.Sprint(c.Op == cdc.OpRead)}})
	if err != nil {
		panic(err)
	}
	return v
}

func ptr(m map[string]any) *map[string]any {
	if m == nil {
		return nil
	}
	return &m
}

// Messages renders changes as messages of topic, all in partition 0.
func Messages(topic string, changes []Change) []kafka.Message {
	out := make([]kafka.Message, len(changes))
	for i, c := range changes {
		out[i] = kafka.Message{Topic: topic, Key: []byte(c.Key), Value: c.Value(), Offset: int64(i), Time: time.Now()}
	}
	return out
}

// Broker starts an embedded broker with topics of the given partitions,
// closed at cleanup, and returns its addresses.
func Broker(t testing.TB, partitions int, names ...string) []string {
	t.Helper()
	var specs []topics.Spec
	for _, n := range names {
		specs = append(specs, topics.Spec{Name: n, Partitions: partitions})
	}
	b, err := localstack.StartBroker(context.Background(), 0, "", specs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addrs()
}

// Publish writes each message to the partition part(i) of its topic, in
// order within a partition.
func Publish(t testing.TB, brokers []string, msgs []kafka.Message, part func(i int) int) {
	t.Helper()
	type tp struct {
		topic string
		p     int
	}
	byPart := map[tp][]kafka.Message{}
	var order []tp
	for i, m := range msgs {
		k := tp{m.Topic, part(i)}
		if byPart[k] == nil {
			order = append(order, k)
		}
		byPart[k] = append(byPart[k], kafka.Message{Key: m.Key, Value: m.Value})
	}
	for _, k := range order {
		conn, err := kafka.DialLeader(context.Background(), "tcp", brokers[0], k.topic, k.p)
		if err != nil {
			t.Fatal(err)
		}
		for ms := byPart[k]; len(ms) > 0; {
			n := min(len(ms), 1000)
			if _, err := conn.WriteMessages(ms[:n]...); err != nil {
				t.Fatal(err)
			}
			ms = ms[n:]
		}
		conn.Close()
	}
}

// Group runs consumer-group members with one handler.
type Group struct {
	t testing.TB
	// Config is the members' configuration; change it before Start.
	Config  consume.Config
	stages  consume.Stages
	handled atomic.Int64 // messages in batches the handler succeeded on
	cancel  []context.CancelFunc
	wg      sync.WaitGroup
}

// NewGroup returns a group over stages; Start adds members.
func NewGroup(t testing.TB, brokers []string, group string, topics []string, stages consume.Stages) *Group {
	g := &Group{t: t, stages: stages, Config: consume.Config{Brokers: brokers, Group: group, Topics: topics,
		BatchSize: 500, BatchWait: 20 * time.Millisecond, SessionTimeout: 6 * time.Second}}
	t.Cleanup(g.Stop)
	return g
}

// Start adds a member.
func (g *Group) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = append(g.cancel, cancel)
	st := consume.Stages{Prepare: g.stages.Prepare, Apply: func(ctx context.Context, p any) (consume.Result, error) {
		res, err := g.stages.Apply(ctx, p)
		if err == nil {
			g.handled.Add(int64(res.Applied + res.Duplicates + res.Invalid))
		}
		return res, err
	}}
	c := consume.New(g.Config, st, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		c.Run(ctx)
	}()
}

// Stop stops every member and waits for them to leave.
func (g *Group) Stop() {
	for _, c := range g.cancel {
		c()
	}
	g.cancel = nil
	g.wg.Wait()
}

// WaitHandled waits until the members handled n messages in all.
func (g *Group) WaitHandled(n int, timeout time.Duration) {
	g.t.Helper()
	deadline := time.Now().Add(timeout)
	for g.handled.Load() < int64(n) {
		if time.Now().After(deadline) {
			g.t.Fatalf("consumers handled %d of %d messages in %s", g.handled.Load(), n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Handled is how many messages the members handled.
func (g *Group) Handled() int64 { return g.handled.Load() }
