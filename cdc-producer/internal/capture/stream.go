package capture

// The stream: the binlog read as a replica from a checkpoint, its row
// events turned into messages by a Decoder, queued to the publisher
// transaction by transaction, with the checkpoint past each transaction
// queued after its messages.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"
)

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
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: c.cfg.ServerID, Flavor: cp.Flavor, Host: host, Port: uint16(port), User: c.cfg.User, Password: c.cfg.Password,
		// No ReadTimeout: go-mysql would set a read deadline on every
		// packet, 12% of the CPU of a catch-up on small transactions; the
		// silence watch below does its work.
		HeartbeatPeriod: time.Second, TimestampStringLocation: time.UTC,
		MaxReconnectAttempts: 3, Logger: slog.New(slog.DiscardHandler),
		// MySQL JSON as MySQL writes it: key order kept, doubles as 1.0.
		RenderJSONAsMySQLText: true,
		// Decoded events read ahead of the capture: the default of 10,240
		// costs hundreds of MiB in a large transaction; 256 cost ~25 MiB
		// more peak RSS than 64 in BenchmarkCDC, at the same rate.
		EventCacheCount: 64,
	})
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
	t := c.newTxn(cp, pub)
	go c.watchLag(rctx)
	go c.heartbeats(rctx, c.enc)
	var quiet silence
	go quiet.watch(rctx, cancel, readTimeout)
	for {
		quiet.waiting.Store(true)
		ev, err := st.GetEvent(rctx)
		quiet.waiting.Store(false)
		quiet.events.Add(1)
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

// readTimeout is how long the binlog link may stay silent, its heartbeats
// (every second) included, while the capture waits for an event, before
// the link is taken for dead and the capture reconnects.
const readTimeout = 10 * time.Second

// silence tells a dead binlog link from a busy capture: the link is
// silent only while the reader waits for an event and none arrives, not
// while the reader waits for the publisher.
type silence struct {
	waiting atomic.Bool   // the reader waits for an event
	events  atomic.Uint64 // events read
}

// watch cancels ctx once the reader has waited limit for an event (to a
// tenth of limit), with an error saying so.
func (s *silence) watch(ctx context.Context, cancel context.CancelCauseFunc, limit time.Duration) {
	tick := time.NewTicker(limit / 10)
	defer tick.Stop()
	start, last := time.Now(), s.events.Load()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if n := s.events.Load(); n != last || !s.waiting.Load() {
				start, last = now, n
				continue
			}
			if now.Sub(start) >= limit {
				cancel(fmt.Errorf("read binlog: no event from the shard, heartbeats included, for %s", limit))
				return
			}
		}
	}
}

// ConfigureParser sets a binlog parser's decoding options to the live
// stream's, which the Decoder expects: times as UTC text, DECIMAL as text,
// MySQL JSON as MySQL writes it. A tool that parses binlog files itself
// calls it before feeding a Decoder.
func ConfigureParser(p *replication.BinlogParser) {
	p.SetParseTime(false)
	p.SetUseDecimal(false)
	p.SetTimestampStringLocation(time.UTC)
	p.SetRenderJSONAsMySQLText(true)
}

// Decoder follows a binlog event stream (rotations, GTIDs, table maps,
// transaction ends, DDL) and turns the row events of the captured tables
// into the messages the live producer publishes, with their source
// positions and, when enabled, transaction metadata. It is the producer's
// one path from binlog rows to messages: the stream uses it, and so can a
// tool that re-reads a binlog range and must publish exactly what the
// producer did (NewDecoder with the same Config, the epoch of the range and
// its first file; Decode for each event in order).
type Decoder struct {
	enc    *Encoder
	log    *slog.Logger
	schema *Schema // nil: columns from the binlog alone (no TINYINT(1), no defaults)
	outbox Outbox
	// outboxTopics are the outbox topics ensured on this connection.
	outboxTopics map[string]bool
	shard        int
	epoch        int64
	file         string
	gtid         string
	thread       *int64
	tables       map[uint64]*Table
	// scratch holds the last table map's fingerprint.
	scratch []byte
	// txTopic is the transaction metadata topic; "" when disabled.
	txTopic string
	tx      txState
	tr      txTrace // the transaction's trace (trace.go)
}

// txState counts the changes of the transaction being read.
type txState struct {
	begun  bool
	id     string
	total  int64
	counts []TableCount
}

// NewDecoder returns a decoder of cfg's capture of a binlog read from file
// (the rotate event at the start of a dump names it again), whose messages
// carry epoch. schema completes the table maps (nil: it is not read); log
// gets the outbox's warnings (nil: nowhere).
func NewDecoder(enc *Encoder, schema *Schema, cfg Config, log *slog.Logger, file string, epoch int64) *Decoder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Decoder{enc: enc, log: log, schema: schema, outbox: cfg.Outbox, shard: cfg.Shard, epoch: epoch, file: file, tables: map[uint64]*Table{}}
	if cfg.TransactionMetadata {
		d.txTopic = TransactionTopic(cfg.TopicPrefix)
	}
	return d
}

// End is a transaction boundary in the binlog: where a capture resumes
// after the transaction.
type End struct {
	File string
	Pos  uint32 // just past the transaction
	// GTID is the executed GTID set up to and including the transaction,
	// when the event carries it (nil otherwise).
	GTID mysql.GTIDSet
	TsMs int64 // the transaction's commit time
	// Span is the transaction's span (trace.go) when its writer recorded
	// a trace context and tracing is on, nil otherwise; the caller ends it.
	Span trace.Span
}

// Decode appends the messages of ev to msgs. It returns the transaction end
// when ev ends one: an XID event, or a query event other than BEGIN (a
// COMMIT of a non-transactional engine, or DDL such as ALTER TABLE).
func (d *Decoder) Decode(ctx context.Context, msgs []kafka.Message, ev *replication.BinlogEvent) ([]kafka.Message, *End, error) {
	h := ev.Header
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		d.file = string(e.NextLogName)
		// Table ids hold within a server's run only, and every rows event
		// comes after its table map in the same file: what was mapped
		// before may name other tables now (a restarted server).
		clear(d.tables)
	case *replication.MariadbGTIDEvent:
		d.gtid, d.thread, d.tx = e.GTID.String(), nil, txState{}
	case *replication.GTIDEvent:
		d.gtid, d.thread, d.tx = "", nil, txState{}
		if u, err := uuid.FromBytes(e.SID); err == nil {
			d.gtid = u.String() + ":" + strconv.FormatInt(e.GNO, 10)
		}
	case *replication.TableMapEvent:
		if !d.enc.captures(string(e.Schema), string(e.Table)) && !d.isOutbox(string(e.Schema), string(e.Table)) &&
			!d.isTraceContext(string(e.Schema), string(e.Table)) {
			delete(d.tables, e.TableID) // the id may have been a captured table's
			return msgs, nil, nil
		}
		d.scratch = appendFingerprint(d.scratch[:0], e)
		if t := d.tables[e.TableID]; t != nil && t.sameMap(d.scratch) {
			return msgs, nil, nil
		}
		var info []infoColumn
		if d.schema != nil {
			var err error
			if info, err = d.schema.columns(ctx, string(e.Table)); err != nil {
				return msgs, nil, err
			}
		}
		t, err := tableOf(e, info)
		if err != nil {
			return msgs, nil, fmt.Errorf("%w: %w", ErrFatal, err)
		}
		d.tables[e.TableID] = t
	case *replication.RowsEvent:
		t := d.tables[e.TableID]
		if t == nil {
			return msgs, nil, nil // a table not captured
		}
		if d.traceRows(ctx, e, t) {
			return msgs, nil, nil
		}
		if t.name == d.outbox.Table {
			msgs, err := d.outboxRows(ctx, msgs, h, e, t) // routed, not published as row changes
			return msgs, nil, err
		}
		return d.rows(msgs, h, e, t), nil, nil
	case *replication.XIDEvent:
		return d.end(msgs, h, e.GSet)
	case *replication.QueryEvent:
		switch q := string(e.Query); q {
		case "BEGIN":
			id := int64(e.SlaveProxyID)
			d.thread = &id
		default:
			if q != "COMMIT" && d.schema != nil { // DDL: the tables may have changed
				d.schema.Forget()
				clear(d.tables)
			}
			return d.end(msgs, h, e.GSet)
		}
	}
	return msgs, nil, nil
}

// isOutbox reports whether table of schema db is the outbox.
func (d *Decoder) isOutbox(db, table string) bool {
	return d.outbox.Table != "" && table == d.outbox.Table && db == d.enc.db
}

// end ends the transaction: its END when it had changes.
func (d *Decoder) end(msgs []kafka.Message, h *replication.EventHeader, gset mysql.GTIDSet) ([]kafka.Message, *End, error) {
	ts := int64(h.Timestamp) * 1000
	if d.tx.begun {
		msgs = append(msgs, d.enc.Transaction(d.txTopic, &TxEvent{ID: d.tx.id, End: true, TsMs: ts, Counts: d.tx.counts}))
		d.traced(msgs, len(msgs)-1)
	}
	d.tx = txState{}
	return msgs, &End{File: d.file, Pos: h.LogPos, GTID: gset, TsMs: ts, Span: d.endTrace()}, nil
}

// rows appends the messages of a rows event.
func (d *Decoder) rows(msgs []kafka.Message, h *replication.EventHeader, e *replication.RowsEvent, t *Table) []kafka.Message {
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
	ts := int64(h.Timestamp) * 1000
	pos := h.LogPos - h.EventSize
	ch := Change{Table: t, Op: op, Source: Source{TsMs: ts, Snapshot: SnapshotFalse, ServerID: h.ServerID,
		GTID: d.gtid, File: d.file, Pos: pos, Thread: d.thread, Epoch: d.epoch}}
	first := len(msgs) // the transaction's BEGIN included
	var tx TxOrder
	var count *TableCount
	if d.txTopic != "" {
		if !d.tx.begun {
			d.tx.begun, d.tx.id = true, d.gtid
			if d.tx.id == "" {
				d.tx.id = d.file + ":" + strconv.FormatUint(uint64(pos), 10)
			}
			msgs = append(msgs, d.enc.Transaction(d.txTopic, &TxEvent{ID: d.tx.id, TsMs: ts}))
		}
		count = d.tx.count(t.name)
		tx.ID, ch.Tx = d.tx.id, &tx
	}
	now := time.Now()
	for i := 0; i+step <= len(e.Rows); i += step {
		ch.Before, ch.After = nil, nil
		switch op {
		case OpCreate:
			ch.After = e.Rows[i]
		case OpDelete:
			ch.Before = e.Rows[i]
		case OpUpdate:
			ch.Before, ch.After = e.Rows[i], e.Rows[i+1]
		}
		ch.Source.Row = i / step
		if count != nil {
			d.tx.total++
			count.N++
			tx.TotalOrder, tx.CollectionOrder = d.tx.total, count.N
		}
		msgs = d.enc.Append(msgs, &ch, now)
	}
	d.traced(msgs, first)
	d.tr.rows += len(e.Rows) / step
	d.enc.metrics.read(t.name, op, len(e.Rows)/step)
	d.enc.metrics.lag(int64(h.Timestamp))
	return msgs
}

// count returns the transaction's count of table's changes.
func (s *txState) count(table string) *TableCount {
	for i := range s.counts {
		if s.counts[i].Table == table {
			return &s.counts[i]
		}
	}
	s.counts = append(s.counts, TableCount{Table: table})
	return &s.counts[len(s.counts)-1]
}

// txn tracks the transaction being read and the messages not yet queued.
type txn struct {
	c       *Capture
	cp      Checkpoint // the last checkpoint queued
	pub     *publisher
	dec     *Decoder
	pending []kafka.Message
}

func (c *Capture) newTxn(cp Checkpoint, pub *publisher) *txn {
	return &txn{c: c, cp: cp, pub: pub, dec: NewDecoder(c.enc, c.schema, c.cfg, c.log, cp.File, cp.Epoch)}
}

func (t *txn) handle(ctx context.Context, ev *replication.BinlogEvent) error {
	var end *End
	var err error
	if t.pending, end, err = t.dec.Decode(ctx, t.pending, ev); err != nil {
		return err
	}
	if end != nil {
		return t.commit(ctx, end)
	}
	if len(t.pending) >= t.c.cfg.FlushRows {
		return t.flush(ctx)
	}
	return nil
}

// flush hands the pending messages to the publisher.
func (t *txn) flush(ctx context.Context) error {
	if len(t.pending) == 0 {
		return nil
	}
	if err := t.pub.send(ctx, item{msgs: t.pending, chunks: t.c.enc.buf.take()}); err != nil {
		return err
	}
	t.c.log.Debug("queued", "messages", len(t.pending))
	t.pending = t.pub.slice(t.c.cfg.FlushRows)
	return nil
}

// commit ends a transaction: its messages are queued, then the checkpoint
// past it, which the publisher saves once they are all acknowledged.
func (t *txn) commit(ctx context.Context, end *End) error {
	if err := t.flush(ctx); err != nil {
		return err
	}
	cp := t.cp
	cp.File, cp.Pos, cp.TsMs = end.File, end.Pos, end.TsMs
	if end.GTID != nil {
		cp.GTID = end.GTID.String()
	}
	t.cp = cp
	t.c.committed(cp, end.Span)
	t.c.log.Debug("transaction end", "gtid", cp.GTID, "file", cp.File, "pos", cp.Pos)
	return t.pub.send(ctx, item{cp: &cp})
}
