package capture

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	gomysql "github.com/go-sql-driver/mysql"
	"github.com/google/uuid"
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
	// FlushRows bounds the messages buffered before a write to Kafka, and so
	// the memory a large transaction needs.
	FlushRows int
	// Snapshot is the snapshot mode.
	Snapshot SnapshotMode
	// SnapshotLockTimeout bounds the global read lock a snapshot takes to
	// read its position: a long query that keeps the lock from being
	// granted would otherwise block every write of the shard meanwhile.
	SnapshotLockTimeout time.Duration
	// Outbox routes the transactional outbox table (outbox.go).
	Outbox Outbox
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
func (c Config) Topic(table string) string { return c.TopicPrefix + "." + table }

// Capture streams one shard.
type Capture struct {
	cfg     Config
	out     *kafka.Writer
	cps     *Checkpoints
	log     *slog.Logger
	metrics *Metrics
	// streaming is true while binlog events are being read.
	streaming atomic.Bool

	mu    sync.Mutex
	saved Checkpoint // the last checkpoint Kafka has
	spans pendingSpans
}

// New returns a capture publishing through brokers.
func New(cfg Config, brokers []string, cps *Checkpoints, log *slog.Logger, m *Metrics) *Capture {
	return &Capture{cfg: cfg, cps: cps, log: log, metrics: m, out: &kafka.Writer{
		Addr: kafka.TCP(brokers...), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		// BatchBytes stays under the broker's default message.max.bytes (1 MiB).
		BatchSize: cfg.FlushRows, BatchBytes: 1_000_000, BatchTimeout: time.Millisecond, MaxAttempts: 5,
	}}
}

// ErrFatal wraps errors that restarting cannot mend (a checkpoint of another
// server, a purged binlog without when_needed, missing column metadata).
var ErrFatal = errors.New("fatal")

// Run captures until ctx ends, reconnecting with backoff when the shard or
// Kafka goes away. Every restart resumes from the last checkpoint, so at
// most the messages after it are sent twice, with the same source position.
func (c *Capture) Run(ctx context.Context) error {
	defer c.out.Close()
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
	cp, ok, err := c.cps.Load(ctx, c.cfg.Shard)
	if err != nil {
		return err
	}
	switch {
	case !ok && c.cfg.Snapshot == SnapshotNever:
		// Saved at once: a restart before the first transaction must
		// resume here, not at a later "now".
		cp = Checkpoint{Shard: c.cfg.Shard, Flavor: srv.flavor, Identity: srv.identity, GTID: srv.gtid, TsMs: time.Now().UnixMilli(), Epoch: 1}
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
		cp.Identity, cp.File, cp.Pos, cp.Epoch = srv.identity, "", 0, cp.Epoch+1
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

// ErrDiverged is returned (wrapped in ErrFatal) when the shard's server is
// behind the checkpoint: its GTID history lacks transactions already
// published (a backup restored, a failover that lost transactions, RESET
// MASTER). Its positions repeat ones already published and its data no
// longer holds what the consumers applied: only a new snapshot (of a new
// epoch) makes the consumers exact again, which snapshot_mode when_needed
// takes by itself.
var ErrDiverged = errors.New("the shard's server is behind the checkpoint")

// checkDiverged reports ErrDiverged when srv's GTID history lacks
// transactions of cp's.
func (c *Capture) checkDiverged(cp Checkpoint, srv server) error {
	if cp.GTID == "" {
		return nil
	}
	lost, err := behind(cp.Flavor, cp.GTID, srv.gtid)
	if err != nil {
		return fmt.Errorf("compare GTID sets: %w", err)
	}
	if lost == "" {
		return nil
	}
	return fmt.Errorf("%w: %w: shard %d has GTID %s, the checkpoint %s (%s); set capture.snapshot_mode = \"when_needed\" "+
		"to take a new snapshot, which the consumers rebuild the shard from", ErrFatal, ErrDiverged, c.cfg.Shard, srv.gtid, cp.GTID, lost)
}

// behind returns what the server's executed GTID set lacks of the
// checkpoint's, or "" when nothing.
func behind(flavor, checkpoint, server string) (string, error) {
	if flavor == mysql.MariaDBFlavor {
		cp, err := mysql.ParseMariadbGTIDSet(checkpoint)
		if err != nil {
			return "", err
		}
		have, err := mysql.ParseMariadbGTIDSet(server)
		if err != nil {
			return "", err
		}
		var lost []string
		for domain, want := range cp.(*mysql.MariadbGTIDSet).Sets {
			got, ok := have.(*mysql.MariadbGTIDSet).Sets[domain]
			if !ok || got.SequenceNumber < want.SequenceNumber {
				lost = append(lost, fmt.Sprintf("domain %d is at %s, the checkpoint at %s", domain, got, want))
			}
		}
		return strings.Join(lost, "; "), nil
	}
	cp, err := mysql.ParseMysqlGTIDSet(checkpoint)
	if err != nil {
		return "", err
	}
	have, err := mysql.ParseMysqlGTIDSet(server)
	if err != nil {
		return "", err
	}
	if have.(*mysql.MysqlGTIDSet).Contain(cp) {
		return "", nil
	}
	return "the server's gtid_executed does not contain the checkpoint's", nil
}

// ErrBinlogPurged is returned (wrapped in ErrFatal) when the binlog the
// checkpoint points into has been purged from the shard and the snapshot
// mode is not when_needed.
var ErrBinlogPurged = errors.New("binlog purged")

// dsn is the shard's data source name. Times stay text (no parseTime):
// the snapshot converts raw column bytes as the binlog path does.
func dsn(c Config) string {
	m := gomysql.NewConfig()
	m.Net, m.Addr, m.User, m.Passwd, m.DBName = "tcp", c.Addr, c.User, c.Password, c.Database
	m.Loc, m.InterpolateParams, m.Timeout = time.UTC, true, 5*time.Second
	m.Params = map[string]string{"time_zone": "'+00:00'"}
	return m.FormatDSN()
}

// stream reads the binlog from cp and publishes until an error or ctx end.
func (c *Capture) stream(ctx context.Context, cp Checkpoint) error {
	host, portStr, err := net.SplitHostPort(c.cfg.Addr)
	if err != nil {
		return fmt.Errorf("%w: shard address %q: %v", ErrFatal, c.cfg.Addr, err)
	}
	port, _ := strconv.Atoi(portStr)
	gset, err := mysql.ParseGTIDSet(cp.Flavor, cp.GTID)
	if err != nil {
		return fmt.Errorf("%w: checkpoint GTID %q: %v", ErrFatal, cp.GTID, err)
	}
	scfg := replication.BinlogSyncerConfig{
		ServerID: c.cfg.ServerID, Flavor: cp.Flavor, Host: host, Port: uint16(port), User: c.cfg.User, Password: c.cfg.Password,
		HeartbeatPeriod: time.Second, ReadTimeout: 10 * time.Second, TimestampStringLocation: time.UTC,
		MaxReconnectAttempts: 3, Logger: slog.New(slog.DiscardHandler),
		// Decoded events read ahead of the capture: the default of 10,240
		// costs hundreds of MiB in a large transaction.
		EventCacheCount: 256,
	}
	syncer := replication.NewBinlogSyncer(scfg)
	defer syncer.Close()
	defer c.spans.abandon()
	st, err := syncer.StartSyncGTID(gset)
	if err != nil {
		return fmt.Errorf("start binlog dump at %s: %w", cp.GTID, err)
	}
	c.streaming.Store(true)
	defer c.streaming.Store(false)
	c.log.Info("streaming", "shard", c.cfg.Shard, "flavor", cp.Flavor, "gtid", cp.GTID, "file", cp.File, "pos", cp.Pos)
	// A failed publisher cancels the reading too, also while the binlog is
	// idle. The publisher outlives ctx a little on shutdown, to save what it
	// already has (checkpoints included).
	rctx, cancel := context.WithCancelCause(ctx)
	pub, stopPub := c.startPublisher(ctx, cancel)
	defer func() {
		cancel(nil)
		stopPub()
	}()
	t := &txn{c: c, cp: cp, pub: pub, tables: map[uint64]*columns{}}
	go c.watchLag(rctx)
	for {
		ev, err := st.GetEvent(rctx)
		if cause := context.Cause(rctx); cause != nil && ctx.Err() == nil {
			return cause // the publisher's error
		}
		if err != nil {
			if errors.Is(err, replication.ErrNeedSyncAgain) || ctx.Err() != nil {
				return err
			}
			if purged(err) {
				return fmt.Errorf("%w: %w: binlog %s (checkpoint %s:%d, GTID %s) is no longer on shard %d; "+
					"set capture.snapshot_mode = \"when_needed\" to take a new snapshot: %v",
					ErrFatal, ErrBinlogPurged, cp.File, cp.File, cp.Pos, cp.GTID, c.cfg.Shard, err)
			}
			return fmt.Errorf("read binlog: %w", err)
		}
		if err := t.handle(ctx, ev); err != nil {
			return err
		}
	}
}

func purged(err error) bool {
	var me *mysql.MyError
	return errors.As(err, &me) && me.Code == 1236 // ER_MASTER_FATAL_ERROR_READING_BINLOG
}

// txn tracks the transaction being read and the messages not yet written.
type txn struct {
	c       *Capture
	cp      Checkpoint // the last checkpoint queued
	pub     *publisher
	file    string
	gtid    string
	tables  map[uint64]*columns
	pending []kafka.Message
	// outboxTopics are the outbox topics ensured on this connection.
	outboxTopics map[string]bool
	tr           txTrace
}

func (t *txn) handle(ctx context.Context, ev *replication.BinlogEvent) error {
	h := ev.Header
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		t.file = string(e.NextLogName)
	case *replication.MariadbGTIDEvent:
		t.gtid = e.GTID.String()
	case *replication.GTIDEvent:
		if u, err := uuid.FromBytes(e.SID); err == nil {
			t.gtid = u.String() + ":" + strconv.FormatInt(e.GNO, 10)
		}
	case *replication.TableMapEvent:
		_, ok := t.c.cfg.Tables[string(e.Table)]
		ok = ok || t.c.cfg.Outbox.Table != "" && string(e.Table) == t.c.cfg.Outbox.Table || t.traceTable(e)
		if ok && string(e.Schema) == t.c.cfg.Database {
			cols, err := columnsOf(e)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrFatal, err)
			}
			t.tables[e.TableID] = cols
		}
	case *replication.RowsEvent:
		cols := t.tables[e.TableID]
		if cols == nil {
			return nil // a table not captured
		}
		if t.traceRows(ctx, e, cols) {
			return nil
		}
		var err error
		if string(e.Table.Table) == t.c.cfg.Outbox.Table {
			err = t.outboxRows(ctx, h, e, cols) // routed, not published as row changes
		} else {
			err = t.rows(h, e, cols)
		}
		if err != nil {
			return err
		}
		if len(t.pending) >= t.c.cfg.FlushRows {
			return t.flush(ctx)
		}
	case *replication.XIDEvent:
		return t.commit(ctx, h, e.GSet)
	case *replication.QueryEvent:
		// BEGIN opens a transaction; anything else (COMMIT of a
		// non-transactional engine, DDL such as ALTER TABLE) ends one.
		if string(e.Query) != "BEGIN" {
			return t.commit(ctx, h, e.GSet)
		}
	}
	return nil
}

// rows turns a rows event into messages.
func (t *txn) rows(h *replication.EventHeader, e *replication.RowsEvent, cols *columns) error {
	table := string(e.Table.Table)
	op := OpCreate
	step := 1
	switch h.EventType {
	case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2,
		replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1, replication.PARTIAL_UPDATE_ROWS_EVENT:
		op, step = OpUpdate, 2
	case replication.DELETE_ROWS_EVENTv0, replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2,
		replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1:
		op = OpDelete
	}
	src := Source{Version: Version, Name: t.c.cfg.TopicPrefix, TsMs: int64(h.Timestamp) * 1000, Snapshot: "false",
		DB: t.c.cfg.Database, Table: table, ServerID: h.ServerID, GTID: t.gtid, File: t.file, Pos: h.LogPos - h.EventSize,
		Shard: t.c.cfg.Shard, Epoch: t.cp.Epoch}
	now := time.Now().UnixMilli()
	topic := t.c.cfg.Topic(table)
	key := t.c.cfg.Tables[table]
	for i := 0; i+step <= len(e.Rows); i += step {
		var before, after []any
		switch op {
		case OpCreate:
			after = e.Rows[i]
		case OpDelete:
			before = e.Rows[i]
		case OpUpdate:
			before, after = e.Rows[i], e.Rows[i+1]
		}
		src.Row = i / step
		v := make([]byte, 0, 256+64*len(cols.names))
		v = append(v, `{"before":`...)
		v = cols.appendRow(v, before)
		v = append(v, `,"after":`...)
		v = cols.appendRow(v, after)
		v = append(v, `,"source":`...)
		v = appendSource(v, &src)
		v = append(v, `,"op":"`...)
		v = append(v, op...)
		v = append(v, `","ts_ms":`...)
		v = strconv.AppendInt(v, now, 10)
		v = append(v, '}')
		row := after
		if row == nil {
			row = before
		}
		t.pending = append(t.pending, kafka.Message{Topic: topic, Key: cols.appendKey(nil, key, row), Value: v, Headers: t.tr.headers})
		t.c.metrics.bytes.Add(float64(len(v)))
	}
	t.c.metrics.rows.WithLabelValues(table, op).Add(float64(len(e.Rows) / step))
	t.tr.rows += len(e.Rows) / step
	t.c.metrics.read(h.Timestamp)
	return nil
}

// appendKey appends the message key of a row image: a JSON object of the
// table's key columns.
func (c *columns) appendKey(b []byte, k Key, row []any) []byte {
	names := k.Columns
	if k.Ordering {
		names = orderingKey(c.value(row, "event_type"))
	}
	b = append(b, '{')
	for i, name := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, name)
		b = append(b, ':')
		b = appendValue(b, c.value(row, name))
	}
	return append(b, '}')
}

// value returns the converted value of column name in row, or nil.
func (c *columns) value(row []any, name string) any {
	for i, n := range c.names {
		if n == name && i < len(row) {
			if row[i] == nil {
				return nil
			}
			return c.conv[i](row[i])
		}
	}
	return nil
}

// orderingKey is the SPEC §2 ordering key of an events row: order_id for
// purchases (1) and returns (3), shop_id otherwise.
func orderingKey(eventType any) []string {
	if t := toInt64(eventType); t == 1 || t == 3 {
		return []string{"order_id"}
	}
	return []string{"shop_id"}
}

// message builds the Kafka message of one change.
func (c *Capture) message(table string, env Envelope) (kafka.Message, error) {
	row := env.After
	if row == nil {
		row = env.Before
	}
	key := map[string]any{}
	k := c.cfg.Tables[table]
	cols := k.Columns
	if k.Ordering {
		cols = orderingKey(row["event_type"])
	}
	for _, col := range cols {
		key[col] = row[col]
	}
	kb, err := json.Marshal(key)
	if err != nil {
		return kafka.Message{}, err
	}
	vb, err := json.Marshal(env)
	if err != nil {
		return kafka.Message{}, err
	}
	c.metrics.bytes.Add(float64(len(vb)))
	return kafka.Message{Topic: c.cfg.Topic(table), Key: kb, Value: vb}, nil
}

// flush hands the pending messages to the publisher.
func (t *txn) flush(ctx context.Context) error {
	if len(t.pending) == 0 {
		return nil
	}
	if err := t.pub.send(ctx, item{msgs: t.pending}); err != nil {
		return err
	}
	t.c.log.Debug("queued", "messages", len(t.pending))
	t.pending = make([]kafka.Message, 0, t.c.cfg.FlushRows)
	return nil
}

// commit ends a transaction: its messages are queued, then the checkpoint
// past it, which the publisher saves once they are all acknowledged.
func (t *txn) commit(ctx context.Context, h *replication.EventHeader, gset mysql.GTIDSet) error {
	if err := t.flush(ctx); err != nil {
		return err
	}
	cp := t.cp
	cp.File, cp.Pos, cp.TsMs = t.file, h.LogPos, int64(h.Timestamp)*1000
	if gset != nil {
		cp.GTID = gset.String()
	}
	t.cp = cp
	t.committed(cp)
	t.c.log.Debug("transaction end", "gtid", cp.GTID, "file", cp.File, "pos", cp.Pos)
	return t.pub.send(ctx, item{cp: &cp})
}

func toInt64(v any) int64 {
	switch n := v.(type) {
	case int8:
		return int64(n)
	case int16:
		return int64(n)
	case int32:
		return int64(n)
	case int64:
		return n
	case int:
		return int64(n)
	}
	return -1
}

// Ready reports whether the capture is streaming.
func (c *Capture) Ready(context.Context) error {
	if !c.streaming.Load() {
		return errors.New("not streaming (connecting, snapshotting or resuming)")
	}
	return nil
}

// watchLag sets shopledger_cdc_lag_bytes every few seconds: how far the server's binlog
// has gone past the last checkpoint.
func (c *Capture) watchLag(ctx context.Context) {
	db, err := sql.Open("mysql", dsn(c.cfg))
	if err != nil {
		return
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
		c.mu.Lock()
		cp := c.saved
		c.mu.Unlock()
		if cp.File == "" {
			continue
		}
		rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
		if err != nil {
			continue
		}
		var lag int64
		for rows.Next() {
			var name string
			var size int64
			cols, _ := rows.Columns()
			dest := []any{&name, &size}
			for range len(cols) - 2 {
				dest = append(dest, new(any))
			}
			if rows.Scan(dest...) != nil {
				continue
			}
			switch {
			case name == cp.File:
				lag += size - int64(cp.Pos)
			case name > cp.File: // binlog names sort in order
				lag += size
			}
		}
		rows.Close()
		c.metrics.behind(max(lag, 0))
	}
}

// checkpointed records a checkpoint Kafka acknowledged.
func (c *Capture) checkpointed(cp Checkpoint) {
	c.mu.Lock()
	c.saved = cp
	c.mu.Unlock()
	c.metrics.checkpoint(cp)
	c.spans.acknowledged(cp)
}

// drainTimeout bounds how long a stopping capture waits for Kafka to take
// what the publisher has queued.
const drainTimeout = 5 * time.Second

// startPublisher starts a publisher that keeps running for up to
// drainTimeout after ctx ends; stop closes it, draining the queue.
func (c *Capture) startPublisher(ctx context.Context, fail context.CancelCauseFunc) (*publisher, func()) {
	pctx, pcancel := context.WithCancel(context.WithoutCancel(ctx))
	pub := newPublisher(pctx, c.out, c.cps, c.checkpointed, c.log, fail)
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
