// Package capture reads one shard's binlog as a replica (go-mysql) and
// publishes every row change of the configured tables to Kafka as a Debezium
// change event, keyed per table; it stores its position in a compacted
// Kafka topic and advances it only at transaction boundaries, after Kafka
// acknowledged every earlier message.
//
// Files by concern: capture.go the lifecycle (connect, snapshot or resume,
// retry), resume.go whether a checkpoint can be resumed from, snapshot.go
// the initial snapshot, stream.go the binlog stream and its Decoder (the one
// path from binlog events to messages), encode.go the one encoder of
// snapshot and stream rows (envelopes, keys, tombstones), columns.go and
// values.go the column types and how their values are written, info.go
// what information_schema adds, schema.go the json-with-schema schemas,
// json.go the JSON primitives, arena.go the buffers messages are written
// into, transaction.go the transaction metadata, heartbeat.go the
// heartbeats, outbox.go the outbox router, trace.go a traced
// transaction's span and traceparent header, publish.go the publisher
// behind the reader, partition.go its batches of one topic partition and
// their sender, batch.go the record batch format, compress.go the batch
// compressions, checkpoint.go the checkpoint store, metrics.go the
// metrics and lag, errors.go the errors.
package capture

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	gomysql "github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/retry"
)

// Key says how a table's messages are keyed: by the listed columns, or, for
// Ordering, by the event's ordering key of SPEC §2 (order_id for purchases
// and returns, shop_id otherwise).
type Key struct {
	Columns  []string
	Ordering bool
}

// Config is one shard's capture.
type Config struct {
	Shard    int
	Addr     string // host:port of the shard
	User     string
	Password string
	Database string // the schema whose tables are captured
	// Flavor is "mysql" or "mariadb"; empty detects it from VERSION().
	Flavor string
	// ServerID is the replica's server id; unique among the shard's replicas.
	ServerID uint32
	// Tables maps each captured table to its key.
	Tables map[string]Key
	// TopicPrefix names topics <prefix>.<table>; it is also source.name.
	TopicPrefix string
	// FlushRows bounds the messages the reader hands to the publisher at
	// once (and the snapshot's), and so, with the publisher's queue, the
	// memory a large transaction needs.
	FlushRows int
	// GroupRows bounds a group of transactions whose messages are
	// published while the checkpoint ahead of them is saved and that share
	// one checkpoint (group commit): once the waiting group reaches it at
	// a transaction's end, the publisher waits. A crash repeats at most two
	// groups: the one being saved and the one behind it.
	GroupRows int
	// Compression compresses the record batches; empty means none.
	Compression Compression
	// Snapshot is the snapshot mode.
	Snapshot SnapshotMode
	// SnapshotLockTimeout bounds the global read lock a snapshot takes to
	// read its position: a long query that keeps the lock from being
	// granted would otherwise block every write of the shard meanwhile.
	SnapshotLockTimeout time.Duration
	// Outbox routes the transactional outbox table (outbox.go).
	Outbox Outbox
	// ValueFormat and KeyFormat are the formats of message values and
	// keys; empty means FormatJSON.
	ValueFormat, KeyFormat Format
	// Tombstones follows each delete with a tombstone: the same key, a
	// null value (Debezium's tombstones.on.delete).
	Tombstones bool
	// TransactionMetadata adds the transaction block to every change
	// event and publishes each transaction's BEGIN and END to
	// <prefix>.transaction (Debezium's provide.transaction.metadata).
	TransactionMetadata bool
	// HeartbeatInterval is how often a heartbeat goes to
	// <prefix>.heartbeat while streaming; 0 sends none.
	HeartbeatInterval time.Duration
	// Name keys the heartbeats: the producer's name.
	Name string
}

// SnapshotMode says when the capture reads every row of the captured
// tables.
type SnapshotMode string

// The snapshot modes.
const (
	// SnapshotInitial snapshots when there is no checkpoint.
	SnapshotInitial SnapshotMode = "initial"
	// SnapshotNever starts streaming at the current position.
	SnapshotNever SnapshotMode = "never"
	// SnapshotWhenNeeded also snapshots when the checkpoint cannot be
	// resumed from: its binlog purged, or the server behind it.
	SnapshotWhenNeeded SnapshotMode = "when_needed"
)

// Topic is the topic of table.
func (c Config) Topic(table string) string { return topicOf(c.TopicPrefix, table) }

// Capture streams one shard.
type Capture struct {
	cfg    Config
	enc    *Encoder      // of the server connected to
	schema *Schema       // of the server connected to
	out    *kafka.Writer // heartbeats
	client *kafka.Client // the publisher's
	codec  kafka.CompressionCodec
	// codecErr is the error of an unknown compression, which Run returns.
	codecErr error
	chunks   chan []byte // the encoder's arena chunks, back from the publisher
	cps      *Checkpoints
	log      *slog.Logger
	metrics  *Metrics
	// streaming is true while binlog events are being read.
	streaming atomic.Bool

	mu    sync.Mutex
	saved Checkpoint // the last checkpoint Kafka has
	spans pendingSpans
}

// New returns a capture publishing through brokers.
func New(cfg Config, brokers []string, cps *Checkpoints, log *slog.Logger, m *Metrics) *Capture {
	c := &Capture{cfg: cfg, cps: cps, log: log, metrics: m, out: NewWriter(brokers, cfg.FlushRows),
		client: &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: produceTimeout}, chunks: make(chan []byte, arenaChunks)}
	c.codec, c.codecErr = cfg.Compression.codec()
	return c
}

// NewWriter returns the writer a capture publishes with: each message to
// the partition of its key as Kafka's own clients choose it (murmur2),
// acknowledged by every in-sync replica, in batches of up to flushRows.
func NewWriter(brokers []string, flushRows int) *kafka.Writer {
	return &kafka.Writer{
		Addr: kafka.TCP(brokers...), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		// BatchBytes stays under the broker's default message.max.bytes (1 MiB).
		BatchSize: flushRows, BatchBytes: 1_000_000, BatchTimeout: time.Millisecond, MaxAttempts: 5,
	}
}

// OpenShard returns a pool on cfg's shard with the capture's session
// settings (UTC, times as text).
func OpenShard(cfg Config) (*sql.DB, error) { return sql.Open("mysql", dsn(cfg)) }

// ServerInfo is what Inspect learns of a shard.
type ServerInfo struct {
	Flavor   string // mysql or mariadb
	Identity string // @@server_uuid or @@server_uid
	GTID     string // the executed GTID set
}

// Inspect reads what a capture reads of a shard on connecting: its flavor
// (cfg.Flavor unless empty), identity and executed GTID set; it also checks
// the binlog settings capture needs.
func Inspect(ctx context.Context, db *sql.DB, cfg Config) (ServerInfo, error) {
	s, err := (&Capture{cfg: cfg}).inspect(ctx, db)
	return ServerInfo{Flavor: s.flavor, Identity: s.identity, GTID: s.gtid}, err
}

// Run captures until ctx ends, reconnecting with backoff when the shard or
// Kafka goes away. Every restart resumes from the last checkpoint, so at
// most the messages after it are sent twice, with the same source position.
func (c *Capture) Run(ctx context.Context) error {
	defer c.out.Close()
	if c.codecErr != nil {
		return c.codecErr
	}
	wait := retry.New(500*time.Millisecond, 10*time.Second)
	for ctx.Err() == nil {
		started := time.Now()
		err := c.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrFatal) {
			return err
		}
		if time.Since(started) > time.Minute {
			wait.Reset()
		}
		d := wait.Next()
		c.log.Error("capture interrupted; resuming from the last checkpoint", "err", err, "retry_in", d)
		c.metrics.restarts.Inc()
		retry.Sleep(ctx, d)
	}
	return nil
}

// server is what the capture learns about the shard on connecting.
type server struct {
	flavor, identity string
	gtid             string // executed GTID set now
	file             string
	pos              uint32
}

func (c *Capture) inspect(ctx context.Context, db *sql.DB) (server, error) {
	var s server
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return s, err
	}
	s.flavor = c.cfg.Flavor
	if s.flavor == "" {
		s.flavor = mysql.MySQLFlavor
		if strings.Contains(strings.ToLower(version), "mariadb") {
			s.flavor = mysql.MariaDBFlavor
		}
	}
	idVar, gtidVar := "@@server_uuid", "@@gtid_executed"
	if s.flavor == mysql.MariaDBFlavor {
		idVar, gtidVar = "@@server_uid", "@@gtid_binlog_pos"
	}
	if err := db.QueryRowContext(ctx, "SELECT "+idVar+", "+gtidVar).Scan(&s.identity, &s.gtid); err != nil {
		return s, fmt.Errorf("read server identity: %w", err)
	}
	var format, image, meta string
	if err := db.QueryRowContext(ctx, "SELECT @@binlog_format, @@binlog_row_image, @@binlog_row_metadata").Scan(&format, &image, &meta); err != nil {
		return s, fmt.Errorf("read binlog settings: %w", err)
	}
	if format != "ROW" || image != "FULL" || meta != "FULL" {
		return s, fmt.Errorf("%w: shard %d needs binlog_format=ROW, binlog_row_image=FULL, binlog_row_metadata=FULL; it has %s, %s, %s",
			ErrFatal, c.cfg.Shard, format, image, meta)
	}
	return s, nil
}

func (c *Capture) runOnce(ctx context.Context) error {
	db, err := sql.Open("mysql", dsn(c.cfg))
	if err != nil {
		return err
	}
	defer db.Close()
	srv, err := c.inspect(ctx, db)
	if err != nil {
		return err
	}
	c.enc, c.schema = NewEncoder(c.cfg, srv.flavor, c.metrics), NewSchema(db, c.cfg.Database, srv.flavor)
	c.enc.buf.recycle(c.chunks)
	cp, ok, err := c.cps.Load(ctx, c.cfg.Shard)
	if err != nil {
		return err
	}
	switch {
	case !ok && c.cfg.Snapshot == SnapshotNever:
		// Saved at once: a restart before the first transaction must
		// resume here, not at a later "now".
		cp = Checkpoint{Shard: c.cfg.Shard, Flavor: srv.flavor, Identity: srv.identity, GTID: srv.gtid, TsMs: time.Now().UnixMilli(), Epoch: 1,
			EpochFrom: &EpochStart{GTID: srv.gtid}}
		if err := c.cps.Save(ctx, cp); err != nil {
			return err
		}
	case !ok:
		return c.snapshotThenStream(ctx, db, srv, 1)
	case cp.Snapshotting:
		c.log.Warn("the last snapshot did not finish; taking a new one", "epoch", cp.Epoch+1)
		return c.snapshotThenStream(ctx, db, srv, cp.Epoch+1)
	}
	if cp.Identity != srv.identity {
		if cp.GTID == "" || cp.Flavor != srv.flavor {
			return fmt.Errorf("%w: %w: shard %d checkpoint is of server %q (%s %s:%d), this server is %q",
				ErrFatal, ErrIdentityMismatch, c.cfg.Shard, cp.Identity, cp.Flavor, cp.File, cp.Pos, srv.identity)
		}
		// Positions on this server are not comparable with the old one's:
		// a new epoch.
		c.log.Warn("checkpoint is of another server; re-anchoring by GTID", "checkpoint_server", cp.Identity,
			"server", srv.identity, "gtid", cp.GTID, "epoch", cp.Epoch+1)
		cp.Identity, cp.File, cp.Pos, cp.Epoch, cp.EpochFrom = srv.identity, "", 0, cp.Epoch+1, &EpochStart{GTID: cp.GTID}
	}
	err = c.checkDiverged(cp, srv)
	if err == nil {
		err = c.checkAvailable(ctx, db, cp)
	}
	if err == nil {
		err = c.stream(ctx, cp)
	}
	if (errors.Is(err, ErrBinlogPurged) || errors.Is(err, ErrDiverged)) && c.cfg.Snapshot == SnapshotWhenNeeded {
		c.log.Warn("cannot resume from the checkpoint; taking a new snapshot (snapshot_mode when_needed)", "err", err, "epoch", cp.Epoch+1)
		return c.snapshotThenStream(ctx, db, srv, cp.Epoch+1)
	}
	return err
}

func (c *Capture) snapshotThenStream(ctx context.Context, db *sql.DB, srv server, epoch int64) error {
	cp, err := c.snapshot(ctx, db, srv, epoch)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return c.stream(ctx, cp)
}

// dsn is the shard's data source name. Times stay text (no parseTime):
// the snapshot converts raw column bytes as the binlog path does.
func dsn(c Config) string {
	m := gomysql.NewConfig()
	m.Net, m.Addr, m.User, m.Passwd, m.DBName = "tcp", c.Addr, c.User, c.Password, c.Database
	m.Loc, m.InterpolateParams, m.Timeout = time.UTC, true, 5*time.Second
	m.Params = map[string]string{"time_zone": "'+00:00'"}
	return m.FormatDSN()
}

// Ready reports whether the capture is streaming.
func (c *Capture) Ready(context.Context) error {
	if !c.streaming.Load() {
		return errors.New("not streaming (connecting, snapshotting or resuming)")
	}
	return nil
}

// checkpointed records a checkpoint Kafka acknowledged.
func (c *Capture) checkpointed(cp Checkpoint) {
	c.mu.Lock()
	c.saved = cp
	c.mu.Unlock()
	c.metrics.checkpoint(cp)
	c.spans.acknowledged(cp)
}

// arenaChunks bounds the arena chunks kept for reuse: about what the
// messages queued for the publisher fill.
const arenaChunks = 32

// drainTimeout bounds how long a stopping capture waits for Kafka to take
// what the publisher has queued.
const drainTimeout = 5 * time.Second

// startPublisher starts a publisher that keeps running for up to
// drainTimeout after ctx ends; stop closes it, draining the queue.
func (c *Capture) startPublisher(ctx context.Context, fail context.CancelCauseFunc) (*publisher, func()) {
	pctx, pcancel := context.WithCancel(context.WithoutCancel(ctx))
	pub := newPublisher(pctx, c.client, c.codec, c.cps, c.chunks, c.cfg.GroupRows, c.checkpointed, c.log, fail)
	return pub, func() {
		done := make(chan struct{})
		go func() { pub.close(); close(done) }()
		select {
		case <-done:
		case <-time.After(drainTimeout):
			pcancel()
			<-done
		}
		pcancel()
	}
}
