// Package cdctest builds change events like the cdc-producer's and
// publishes them to chosen partitions, for the consumers' tests.
package cdctest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/cdc"
	"github.com/shopledger/shopledger/internal/localstack"
	"github.com/shopledger/shopledger/internal/topics"
)

// Change describes one change event.
type Change struct {
	Shard         int
	Epoch         int64
	Table, Op     string
	File          string // binlog.000001 if empty
	Pos           uint32
	Row           int
	Before, After map[string]any
	Key           string
}

// Value renders the change as the cdc-producer's message value.
func (c Change) Value() []byte {
	file := c.File
	if file == "" {
		file = "binlog.000001"
	}
	v, err := json.Marshal(cdc.Envelope[map[string]any]{Before: ptr(c.Before), After: ptr(c.After), Op: c.Op, TsMs: 1,
		Source: cdc.Source{Connector: "mysql", Name: "shop", DB: "shop", Table: c.Table, File: file, Pos: c.Pos,
			Row: c.Row, Shard: c.Shard, Epoch: c.Epoch, TsMs: 1_760_000_000_000, Snapshot: fmt.Sprint(c.Op == cdc.OpRead)}})
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
