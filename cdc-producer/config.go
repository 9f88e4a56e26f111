package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/shopledger/shopledger/cdc-producer/internal/capture"
	"github.com/shopledger/shopledger/internal/config"
	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/topics"
	"github.com/shopledger/shopledger/internal/tracing"
)

// Config is cdc-producer's configuration (cdc-producer.toml); one process
// captures one shard (--shard overrides `shard`).
type Config struct {
	Shard int `mapstructure:"shard"`
	// Database is the shard; an empty addr means 127.0.0.1:(33061 + shard).
	Database sqldb.Config `mapstructure:"database"`
	Capture  struct {
		// Flavor is mysql or mariadb; empty detects it.
		Flavor string `mapstructure:"flavor"`
		// ServerID is the replica's server id; 0 means 1001 + shard.
		ServerID     uint32 `mapstructure:"server_id"`
		SnapshotMode string `mapstructure:"snapshot_mode"`
		// SnapshotLockTimeout bounds the snapshot's global read lock.
		SnapshotLockTimeout time.Duration `mapstructure:"snapshot_lock_timeout"`
		FlushRows           int           `mapstructure:"flush_rows"`
		// GroupRows bounds a group of transactions that share a checkpoint
		// (see capture.Config.GroupRows): what a crash may repeat.
		GroupRows int      `mapstructure:"group_rows"`
		Tables    []string `mapstructure:"tables"`
		// Keys maps a table to its key columns (comma-separated; Debezium's
		// message.key.columns), or to "ordering" for the events table's
		// ordering key; tables not listed are keyed by their primary key.
		Keys map[string]string `mapstructure:"keys"`
		// Outbox routes the transactional outbox (SPEC §5) as Debezium's
		// Outbox Event Router; its rows are never published as row changes.
		Outbox struct {
			// Table is the outbox table; "" routes none.
			Table string `mapstructure:"table"`
			// Topic is the route (Debezium's route.topic.replacement):
			// ${routedByValue} stands for the row's aggregatetype; ""
			// means <topic_prefix>.outbox.${routedByValue}.
			Topic string `mapstructure:"topic"`
			// ExpandJSONPayload writes a JSON object payload as JSON, not
			// as a JSON string (Debezium's table.expand.json.payload).
			ExpandJSONPayload bool `mapstructure:"expand_json_payload"`
			// AggregateTypes are the aggregate types whose topics are
			// created at start; others are created on first use.
			AggregateTypes []string `mapstructure:"aggregate_types"`
		} `mapstructure:"outbox"`
		// Format is the message value format: json, or json-with-schema
		// (Kafka Connect's JsonConverter with schemas.enable=true).
		Format string `mapstructure:"format"`
		// KeyFormat is the key format; empty means Format.
		KeyFormat string `mapstructure:"key_format"`
		// Tombstones follows each delete with a tombstone (null value).
		Tombstones bool `mapstructure:"tombstones"`
		// TransactionMetadata is Debezium's provide.transaction.metadata.
		TransactionMetadata bool `mapstructure:"transaction_metadata"`
	} `mapstructure:"capture"`
	Heartbeat struct {
		// Interval between heartbeats on <prefix>.heartbeat; 0 sends none.
		Interval time.Duration `mapstructure:"interval"`
	} `mapstructure:"heartbeat"`
	Kafka struct {
		Brokers         []string `mapstructure:"brokers"`
		TopicPrefix     string   `mapstructure:"topic_prefix"`
		CheckpointTopic string   `mapstructure:"checkpoint_topic"`
		// Compression compresses the change events' record batches, as
		// Kafka producers' compression.type: none, gzip, snappy, lz4 or zstd.
		Compression string `mapstructure:"compression"`
		// Topics are the partitions, replication and retention of the
		// topics this producer creates.
		Topics topics.Settings `mapstructure:",squash"`
	} `mapstructure:"kafka"`
	// Server serves /health, /ready and /metrics; port 0 means 8100 + shard
	// (SPEC §6), -1 disables it.
	Server  httpapi.ServerConfig `mapstructure:"server"`
	Logging logging.Config       `mapstructure:"logging"`
	// Tracing sends spans to an OTLP collector; off without an endpoint.
	Tracing tracing.Config `mapstructure:"tracing"`
}

func defaults() *Config {
	c := &Config{Shard: -1, Logging: logging.Default, Tracing: tracing.Default}
	c.Database = sqldb.Config{User: "cdc", Database: "shop"}
	c.Capture.SnapshotMode = string(capture.SnapshotInitial)
	c.Capture.SnapshotLockTimeout = 10 * time.Second
	c.Capture.FlushRows = 2000
	c.Capture.GroupRows = 10000
	c.Capture.Tables = append([]string(nil), topics.CDCTables...)
	c.Capture.Outbox.Table = "outbox"
	c.Capture.Outbox.AggregateTypes = append([]string(nil), topics.OutboxAggregates...)
	c.Capture.Keys = map[string]string{"events": "ordering", "account_transaction": "user_id", "purchase_history": "order_id",
		"order_return": "order_id", "shop": "id", "shop_state": "shop_id"}
	c.Capture.Format = string(capture.FormatJSON)
	c.Capture.Tombstones = true
	c.Heartbeat.Interval = 10 * time.Second
	c.Kafka.Brokers = []string{"127.0.0.1:9092"}
	c.Kafka.TopicPrefix = topics.DefaultPrefix
	c.Kafka.Topics = topics.DefaultSettings
	c.Kafka.CheckpointTopic = topics.Checkpoints(topics.DefaultPrefix)
	c.Kafka.Compression = string(capture.CompressionLZ4)
	c.Server = httpapi.ServerConfig{Host: "127.0.0.1", ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	return c
}

// Validate names the bad key and fills the derived defaults.
func (c *Config) Validate() error {
	var ch config.Checks
	ch.Check(c.Shard >= 0, "shard", "must be set (--shard or shard = N), got %d", c.Shard)
	ch.Check(c.Capture.Flavor == "" || c.Capture.Flavor == "mysql" || c.Capture.Flavor == "mariadb", "capture.flavor", "must be mysql, mariadb or empty (detect), got %q", c.Capture.Flavor)
	m := capture.SnapshotMode(c.Capture.SnapshotMode)
	ch.Check(m == capture.SnapshotInitial || m == capture.SnapshotNever || m == capture.SnapshotWhenNeeded, "capture.snapshot_mode",
		"must be initial, never or when_needed, got %q", m)
	ch.Check(c.Capture.SnapshotLockTimeout >= time.Second, "capture.snapshot_lock_timeout", "must be at least 1s, got %s", c.Capture.SnapshotLockTimeout)
	ch.Check(c.Capture.FlushRows >= 1, "capture.flush_rows", "must be at least 1")
	ch.Check(c.Capture.GroupRows >= 1, "capture.group_rows", "must be at least 1")
	ch.Check(len(c.Capture.Tables) > 0, "capture.tables", "must list at least one table")
	ch.Check(validFormat(c.Capture.Format), "capture.format", "must be json or json-with-schema, got %q", c.Capture.Format)
	ch.Check(c.Capture.KeyFormat == "" || validFormat(c.Capture.KeyFormat), "capture.key_format",
		"must be json, json-with-schema or empty (as capture.format), got %q", c.Capture.KeyFormat)
	ch.Check(c.Heartbeat.Interval >= 0, "heartbeat.interval", "must be 0 (none) or positive, got %s", c.Heartbeat.Interval)
	ch.Check(len(c.Kafka.Brokers) > 0, "kafka.brokers", "must list at least one broker")
	ch.Check(c.Kafka.TopicPrefix != "", "kafka.topic_prefix", "must be set")
	c.Kafka.Topics.Check(&ch, "kafka")
	ch.Check(c.Kafka.CheckpointTopic != "", "kafka.checkpoint_topic", "must be set")
	ch.Check(slices.Contains(capture.Compressions, capture.Compression(c.Kafka.Compression)), "kafka.compression",
		"must be one of %v, got %q", capture.Compressions, c.Kafka.Compression)
	ch.Check(c.Server.Port >= -1 && c.Server.Port < 65536, "server.port", "must be -1 (no server), 0 (8100 + shard) or a port, got %d", c.Server.Port)
	for t := range c.Capture.Keys {
		ch.Check(contains(c.Capture.Tables, t), "capture.keys", "names table %q, which is not in capture.tables", t)
	}
	if o := &c.Capture.Outbox; o.Table != "" {
		ch.Check(!contains(c.Capture.Tables, o.Table), "capture.outbox.table", "%q is also in capture.tables: the outbox is routed, not published as row changes", o.Table)
		if o.Topic == "" && c.Kafka.TopicPrefix != "" {
			o.Topic = topics.OutboxReplacement(c.Kafka.TopicPrefix)
		}
		out := c.outbox()
		for _, a := range append([]string{"aggregate"}, o.AggregateTypes...) { // the route itself, and each declared topic
			if err := capture.ValidTopic(out.TopicOf(a)); err != nil {
				ch.Check(false, "capture.outbox", "topic of aggregate type %q: %v", a, err)
			}
		}
	}
	if err := c.Logging.Validate(); err != nil {
		return err
	}
	if err := c.Tracing.Validate(); err != nil {
		return err
	}
	if c.Shard >= 0 {
		if c.Database.Addr == "" {
			c.Database.Addr = fmt.Sprintf("127.0.0.1:%d", 33061+c.Shard)
		}
		if c.Capture.ServerID == 0 {
			c.Capture.ServerID = uint32(1001 + c.Shard)
		}
		if c.Server.Port == 0 {
			c.Server.Port = 8100 + c.Shard
		}
	}
	return ch.Err()
}

func validFormat(f string) bool {
	return f == string(capture.FormatJSON) || f == string(capture.FormatJSONWithSchema)
}

// keyFormat is the key format: key_format, else format.
func (c *Config) keyFormat() capture.Format {
	if c.Capture.KeyFormat == "" {
		return capture.Format(c.Capture.Format)
	}
	return capture.Format(c.Capture.KeyFormat)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// outbox is the capture's outbox routing (no Ensure).
func (c *Config) outbox() capture.Outbox {
	o := c.Capture.Outbox
	return capture.Outbox{Table: o.Table, Topic: o.Topic, ExpandJSON: o.ExpandJSONPayload}
}

// capture is the shard's capture configuration.
func (c *Config) capture() capture.Config {
	return capture.Config{Shard: c.Shard, Addr: c.Database.Addr, User: c.Database.User, Password: c.Database.Password,
		Database: c.Database.Database, Flavor: c.Capture.Flavor, ServerID: c.Capture.ServerID, Tables: c.tables(),
		TopicPrefix: c.Kafka.TopicPrefix, FlushRows: c.Capture.FlushRows, GroupRows: c.Capture.GroupRows, Compression: capture.Compression(c.Kafka.Compression),
		Snapshot: capture.SnapshotMode(c.Capture.SnapshotMode), SnapshotLockTimeout: c.Capture.SnapshotLockTimeout,
		Outbox: c.outbox(), ValueFormat: capture.Format(c.Capture.Format),
		KeyFormat: c.keyFormat(), Tombstones: c.Capture.Tombstones, TransactionMetadata: c.Capture.TransactionMetadata,
		HeartbeatInterval: c.Heartbeat.Interval, Name: fmt.Sprintf("cdc-producer-%d", c.Shard)}
}

// tables turns the tables and keys settings into capture keys.
func (c *Config) tables() map[string]capture.Key {
	out := map[string]capture.Key{}
	names := append([]string(nil), c.Capture.Tables...)
	sort.Strings(names)
	for _, t := range names {
		spec := c.Capture.Keys[t]
		switch spec {
		case "ordering":
			out[t] = capture.Key{Ordering: true}
		case "":
			out[t] = capture.Key{} // the primary key
		default:
			out[t] = capture.Key{Columns: strings.Split(spec, ",")}
		}
	}
	return out
}
