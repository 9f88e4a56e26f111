// Package topics names the Kafka topics shopledger uses, in one list that
// the cdc-producer, the consumers and the local stack all read, and creates
// them up front with their settings: topics auto-created on first use get
// the broker's defaults (replication factor, retention), and brokers run in
// production with auto-creation off.
package topics

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/config"
)

// DefaultPrefix is the topic prefix of the default capture (SPEC §5), also
// the Debezium source.name.
const DefaultPrefix = "shop"

// CDCTables are the shard tables the cdc-producer captures by default.
var CDCTables = []string{"events", "account_transaction", "purchase_history", "order_return", "shop", "shop_state", "user", "good"}

// Table is the change topic of table: <prefix>.<table>.
func Table(prefix, table string) string { return prefix + "." + table }

// OutboxAggregates are the aggregate types of the domain events the shard
// workers write to the outbox (SPEC §5): the cdc-producer creates their
// topics up front, and any other aggregate's on first use.
var OutboxAggregates = []string{"order", "shop", "file"}

// OutboxReplacement is the default route of outbox events, in Debezium's
// route.topic.replacement form: <prefix>.outbox.<aggregatetype>.
func OutboxReplacement(prefix string) string { return prefix + ".outbox.${routedByValue}" }

// Outbox is the topic of the outbox events of aggregate under prefix.
func Outbox(prefix, aggregate string) string { return prefix + ".outbox." + aggregate }

// Checkpoints is the cdc-producers' checkpoint topic: compacted, keyed by
// shard.
func Checkpoints(prefix string) string { return prefix + ".cdc-checkpoints" }

// Settings are the replication and retention of the topics a component
// creates (the [kafka] keys replication_factor, min_insync_replicas,
// retention).
type Settings struct {
	// Partitions of each change topic.
	Partitions int `mapstructure:"partitions"`
	// ReplicationFactor of every topic created; 3 in production.
	ReplicationFactor int `mapstructure:"replication_factor"`
	// MinInsyncReplicas is the topic's min.insync.replicas: with acks=all a
	// write succeeds only once this many replicas have it. 0 leaves the
	// broker's default.
	MinInsyncReplicas int `mapstructure:"min_insync_replicas"`
	// Retention is the change topics' retention.ms: 0 leaves the broker's
	// default, a negative value keeps messages forever. Checkpoint topics
	// are compacted and kept forever whatever this says.
	Retention time.Duration `mapstructure:"retention"`
}

// DefaultSettings are a single local broker's: 3 partitions, one replica.
var DefaultSettings = Settings{Partitions: 3, ReplicationFactor: 1}

// Check adds the settings' problems to ch under prefix (e.g. "kafka").
func (s Settings) Check(ch *config.Checks, prefix string) {
	ch.Check(s.Partitions >= 1, prefix+".partitions", "must be at least 1, got %d", s.Partitions)
	ch.Check(s.ReplicationFactor >= 1, prefix+".replication_factor", "must be at least 1, got %d", s.ReplicationFactor)
	ch.Check(s.MinInsyncReplicas >= 0 && s.MinInsyncReplicas <= s.ReplicationFactor, prefix+".min_insync_replicas",
		"must be 0 (broker default) to replication_factor (%d), got %d", s.ReplicationFactor, s.MinInsyncReplicas)
}

// Spec describes one topic.
type Spec struct {
	Name       string
	Partitions int
	// ReplicationFactor 0 means 1.
	ReplicationFactor int
	// Configs are topic-level configs (cleanup.policy, retention.ms,
	// min.insync.replicas, ...).
	Configs map[string]string
}

// Changes is the spec of a change topic under s.
func (s Settings) Changes(name string) Spec {
	c := map[string]string{}
	switch {
	case s.Retention < 0:
		c["retention.ms"] = "-1"
	case s.Retention > 0:
		c["retention.ms"] = strconv.FormatInt(s.Retention.Milliseconds(), 10)
	}
	s.minISR(c)
	return Spec{Name: name, Partitions: s.Partitions, ReplicationFactor: s.ReplicationFactor, Configs: c}
}

// Compacted is the spec of a keyed-state topic (checkpoints) under s: one
// partition, compacted, kept forever.
func (s Settings) Compacted(name string) Spec {
	c := map[string]string{"cleanup.policy": "compact", "retention.ms": "-1"}
	s.minISR(c)
	return Spec{Name: name, Partitions: 1, ReplicationFactor: s.ReplicationFactor, Configs: c}
}

func (s Settings) minISR(c map[string]string) {
	if s.MinInsyncReplicas > 0 {
		c["min.insync.replicas"] = strconv.Itoa(s.MinInsyncReplicas)
	}
}

// CDC are the topics of a capture of tables under prefix: one change topic
// per table and the checkpoint topic.
func (s Settings) CDC(prefix string, tables []string) []Spec {
	specs := []Spec{s.Compacted(Checkpoints(prefix))}
	for _, t := range tables {
		specs = append(specs, s.Changes(Table(prefix, t)))
	}
	return specs
}

// Ensure creates every topic that does not exist yet; existing topics are
// left as they are.
func Ensure(ctx context.Context, brokers []string, specs ...Spec) error {
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second}
	req := &kafka.CreateTopicsRequest{}
	for _, s := range specs {
		rf := max(s.ReplicationFactor, 1)
		c := kafka.TopicConfig{Topic: s.Name, NumPartitions: s.Partitions, ReplicationFactor: rf}
		for k, v := range s.Configs {
			c.ConfigEntries = append(c.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
		}
		req.Topics = append(req.Topics, c)
	}
	resp, err := cl.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	var errs []error
	for name, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
