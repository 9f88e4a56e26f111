package main

// cdc-producer replay: a binlog range of one shard published again as the
// live producer published it (its Decoder, its writer, its epoch), to the
// live topics, to other topics or as JSON lines; see the README.

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/cdc-producer/internal/capture"
	"github.com/shopledger/shopledger/cdc-producer/internal/replay"
	"github.com/shopledger/shopledger/internal/cli"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/topics"
)

// replayFlags are replay's options.
type replayFlags struct {
	from, to, binlogDir, tables, output, topicPrefix string
	dryRun                                           bool
	serverID                                         uint
	epoch                                            int64
}

func replayCommand(fs *flag.FlagSet) cli.Runner[Config] {
	var f replayFlags
	fs.StringVar(&f.from, "from", "", "first `POS` of the range (required): FILE:POS, a GTID set (the range starts after it), an RFC 3339 time, start or now")
	fs.StringVar(&f.to, "to", "now", "end `POS` of the range, not included: FILE:POS, a GTID set (the range ends with it), an RFC 3339 time, start or now")
	fs.StringVar(&f.binlogDir, "binlog-dir", "", "read archived binlog files from `DIR` instead of the server (after PURGE BINARY LOGS, say)")
	fs.StringVar(&f.tables, "tables", "", "replay only these captured `TABLES` (comma-separated; the outbox table names the outbox's events)")
	fs.StringVar(&f.output, "output", "", "write JSON lines to `FILE` (- for stdout) instead of publishing to Kafka")
	fs.StringVar(&f.topicPrefix, "topic-prefix", "", "publish to topics of `PREFIX` instead of the live topics (kafka.topic_prefix)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "only count the row changes per table and op")
	fs.UintVar(&f.serverID, "server-id", 0, "replica server `ID` when reading from the server (default: capture.server_id + 1000)")
	fs.Int64Var(&f.epoch, "epoch", 0, "source.epoch of the messages (default: the live checkpoint's epoch; 1 without one)")
	return cli.NoArgs(func(ctx context.Context, cfg *Config, _ []string) error {
		err := runReplay(ctx, cfg, f, os.Stdout, os.Stderr)
		if errors.Is(err, errUsage) || errors.Is(err, replay.ErrRange) {
			return cli.Exit(cli.ExitUsage, err)
		}
		return err
	})
}

// errUsage is returned for options that cannot be used as given.
var errUsage = errors.New("bad options")

// live reports whether the replay publishes to the live producer's topics.
func (f replayFlags) live() bool { return !f.dryRun && f.output == "" && f.topicPrefix == "" }

func runReplay(ctx context.Context, cfg *Config, f replayFlags, stdout, stderr io.Writer) error {
	log := logging.New(cfg.Logging, fmt.Sprintf("cdc-producer-%d replay", cfg.Shard))
	from, to, err := parseRange(f)
	if err != nil {
		return err
	}
	ccfg, err := replayCapture(cfg, f)
	if err != nil {
		return err
	}
	shard, err := openShard(ctx, ccfg, f.binlogDir != "", log)
	if err != nil {
		return err
	}
	defer shard.close()
	src, err := openSource(ctx, ccfg, f, shard)
	if err != nil {
		return err
	}
	live, err := liveCheckpoint(ctx, cfg, f, shard.info, log)
	if err != nil {
		return err
	}
	plan, err := replay.Resolve(ctx, replay.Range{From: from, To: to, Flavor: shard.info.Flavor, Limit: live.limit, Floor: live.floor}, src)
	if err != nil {
		return err
	}
	log.Info("replaying", "shard", cfg.Shard, "from", from, "to", to, "source", src.Describe(), "first_file", plan.Start,
		"end", fmt.Sprintf("%s:%d", plan.End.Name, plan.End.Pos), "epoch", live.epoch, "output", f.describeOutput(ccfg.TopicPrefix))
	opts := replay.Options{Plan: plan, Database: ccfg.Database, Tables: map[string]bool{}}
	for t := range ccfg.Tables {
		opts.Tables[t] = true
	}
	if ccfg.Outbox.Table != "" {
		opts.Tables[ccfg.Outbox.Table] = true
	}
	if !f.dryRun {
		if opts.Sink, err = openSink(ctx, cfg, &ccfg, f, stdout); err != nil {
			return err
		}
		enc := capture.NewEncoder(ccfg, shard.info.Flavor, capture.NewMetrics(prometheus.NewRegistry()))
		opts.Encoder = &decoder{dec: capture.NewDecoder(enc, shard.schema, ccfg, log, plan.Start, live.epoch)}
	}
	show, every := showProgress(stderr)
	progress := replay.NewProgress(plan, every, show)
	opts.Progress = progress.At
	sum, err := replay.Run(ctx, opts)
	progress.Finish()
	if err != nil {
		return fmt.Errorf("replay stopped at %s:%d: %w", sum.Reached.Name, sum.Reached.Pos, err)
	}
	out := stderr
	if f.dryRun {
		out = stdout
	}
	sum.Format(out)
	return nil
}

func parseRange(f replayFlags) (from, to replay.Bound, err error) {
	if f.from == "" {
		return from, to, fmt.Errorf("%w: --from is required (FILE:POS, a GTID set, an RFC 3339 time, start or now)", errUsage)
	}
	if from, err = replay.ParseBound(f.from); err != nil {
		return from, to, fmt.Errorf("%w: --from: %w", errUsage, err)
	}
	if to, err = replay.ParseBound(f.to); err != nil {
		return from, to, fmt.Errorf("%w: --to: %w", errUsage, err)
	}
	if f.dryRun && (f.output != "" || f.topicPrefix != "") {
		return from, to, fmt.Errorf("%w: --dry-run writes nothing: drop --output and --topic-prefix", errUsage)
	}
	if f.output != "" && f.topicPrefix != "" {
		return from, to, fmt.Errorf("%w: --output writes no topics: drop --topic-prefix", errUsage)
	}
	return from, to, nil
}

// replayCapture is the live capture's configuration narrowed to --tables,
// with --topic-prefix's topics.
func replayCapture(cfg *Config, f replayFlags) (capture.Config, error) {
	c := cfg.capture()
	if f.tables != "" {
		want := strings.Split(f.tables, ",")
		for i := range want {
			want[i] = strings.TrimSpace(want[i])
		}
		known := map[string]bool{}
		for t := range c.Tables {
			known[t] = true
		}
		if c.Outbox.Table != "" {
			known[c.Outbox.Table] = true
		}
		if unknown := replay.UnknownTables(want, known); len(unknown) > 0 {
			names := make([]string, 0, len(known))
			for t := range known {
				names = append(names, t)
			}
			slices.Sort(names)
			return c, fmt.Errorf("%w: --tables: %s not captured (capture.tables and the outbox: %s)", errUsage,
				strings.Join(unknown, ", "), strings.Join(names, ", "))
		}
		for t := range c.Tables {
			if !slices.Contains(want, t) {
				delete(c.Tables, t)
			}
		}
		if !slices.Contains(want, c.Outbox.Table) {
			c.Outbox.Table = ""
		}
	}
	if p := f.topicPrefix; p != "" {
		if err := capture.ValidTopic(p); err != nil {
			return c, fmt.Errorf("%w: --topic-prefix: %w", errUsage, err)
		}
		live := cfg.Kafka.TopicPrefix + "."
		c.TopicPrefix = p
		if rest, ok := strings.CutPrefix(c.Outbox.Topic, live); ok {
			c.Outbox.Topic = p + "." + rest
		} else {
			c.Outbox.Topic = p + "." + c.Outbox.Topic
		}
	}
	return c, nil
}

func (f replayFlags) describeOutput(prefix string) string {
	switch {
	case f.dryRun:
		return "none (dry run)"
	case f.output == "-":
		return "stdout"
	case f.output != "":
		return f.output
	}
	return "topics " + prefix + ".*"
}

// shardConn is the shard's database, when it answers: its flavor and
// identity, and its schema for the Decoder.
type shardConn struct {
	db     *sql.DB
	info   capture.ServerInfo
	schema *capture.Schema
}

func (s *shardConn) close() {
	if s.db != nil {
		s.db.Close()
	}
}

// openShard connects to the shard. Reading archived files, the shard may
// be gone: the replay then goes on without it, with a warning, as the
// binlog alone gives less (TINYINT(1) is no boolean, no column defaults).
func openShard(ctx context.Context, cfg capture.Config, optional bool, log *slog.Logger) (*shardConn, error) {
	db, err := capture.OpenShard(cfg)
	if err == nil {
		var info capture.ServerInfo
		if info, err = capture.Inspect(ctx, db, cfg); err == nil {
			return &shardConn{db: db, info: info, schema: capture.NewSchema(db, cfg.Database, info.Flavor)}, nil
		}
		db.Close()
	}
	if !optional {
		return nil, fmt.Errorf("shard %d at %s: %w", cfg.Shard, cfg.Addr, err)
	}
	log.Warn("the shard does not answer; replaying the archived files without its schema (TINYINT(1) columns as numbers, no column defaults in schemas)",
		"shard", cfg.Shard, "addr", cfg.Addr, "err", err)
	return &shardConn{info: capture.ServerInfo{Flavor: cfg.Flavor}}, nil
}

// openSource opens the binlog: --binlog-dir's files, else the shard's as a
// replica. It completes shard.info's flavor from the files when the shard
// did not answer.
func openSource(ctx context.Context, cfg capture.Config, f replayFlags, shard *shardConn) (replay.Source, error) {
	if f.binlogDir == "" {
		return serverSource(cfg, shard, f.serverID)
	}
	src := &replay.Dir{Path: f.binlogDir, Configure: capture.ConfigureParser}
	if shard.info.Flavor == "" {
		var err error
		if shard.info.Flavor, err = flavorOfFiles(ctx, src); err != nil {
			return nil, err
		}
	}
	return src, nil
}

// flavorOfFiles is the flavor of the server that wrote a folder's files.
func flavorOfFiles(ctx context.Context, src replay.Source) (string, error) {
	files, err := src.Binlogs(ctx)
	if err != nil {
		return "", err
	}
	h, err := src.Header(ctx, files[0].Name)
	if err != nil {
		return "", err
	}
	if strings.Contains(strings.ToLower(h.Version), "mariadb") {
		return mysql.MariaDBFlavor, nil
	}
	return mysql.MySQLFlavor, nil
}

// serverSource reads the shard's binlog as a replica, decoded as the live
// capture decodes it.
func serverSource(cfg capture.Config, shard *shardConn, serverID uint) (*replay.Server, error) {
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("shard address %q: %w", cfg.Addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("shard address %q: %w", cfg.Addr, err)
	}
	id := uint32(serverID)
	if serverID == 0 {
		id = cfg.ServerID + 1000
	}
	if id == cfg.ServerID {
		return nil, fmt.Errorf("%w: --server-id %d is the live producer's (capture.server_id): the server would drop one of the two", errUsage, id)
	}
	return &replay.Server{DB: shard.db, Syncer: replication.BinlogSyncerConfig{
		ServerID: id, Flavor: shard.info.Flavor, Host: host, Port: uint16(port), User: cfg.User, Password: cfg.Password,
		HeartbeatPeriod: time.Second, ReadTimeout: 10 * time.Second, TimestampStringLocation: time.UTC,
		MaxReconnectAttempts: 3, Logger: slog.New(slog.DiscardHandler), RenderJSONAsMySQLText: true, EventCacheCount: 256,
	}}, nil
}

// bounds is what the live checkpoint makes of a replay: the messages'
// epoch, and, into the live topics, where the range must end and start.
type bounds struct {
	epoch        int64
	limit, floor replay.Limit
}

// liveCheckpoint reads the live producer's checkpoint: its epoch is the
// messages' (unless --epoch), and a replay into the live topics stops at
// it, so that it never publishes what the live producer has not, and
// starts no earlier than the epoch's stream, so that it never publishes
// with the epoch's number what the consumers got in its snapshot.
func liveCheckpoint(ctx context.Context, cfg *Config, f replayFlags, srv capture.ServerInfo, log *slog.Logger) (bounds, error) {
	if f.epoch < 0 {
		return bounds{}, fmt.Errorf("%w: --epoch must be positive, got %d", errUsage, f.epoch)
	}
	if f.dryRun || (!f.live() && f.epoch > 0) {
		return bounds{epoch: max(f.epoch, 1)}, nil
	}
	cps := capture.NewCheckpoints(cfg.Kafka.Brokers, cfg.Kafka.CheckpointTopic)
	defer cps.Close()
	cp, ok, err := cps.Load(ctx, cfg.Shard)
	switch {
	case err != nil && f.live():
		return bounds{}, fmt.Errorf("read the live checkpoint: %w", err)
	case err != nil || !ok:
		if f.live() {
			return bounds{}, fmt.Errorf("shard %d has no checkpoint in %s: the live producer has published nothing yet; "+
				"replay to --output FILE or --topic-prefix P instead", cfg.Shard, cfg.Kafka.CheckpointTopic)
		}
		log.Warn("no live checkpoint to take the epoch from; the messages carry epoch 1 (--epoch sets it)", "err", err)
		return bounds{epoch: 1}, nil
	}
	b := bounds{epoch: cp.Epoch}
	if f.epoch > 0 {
		b.epoch = f.epoch
	}
	if !f.live() {
		return b, nil
	}
	if cp.Snapshotting || (srv.Identity != "" && cp.Identity != srv.Identity) {
		return bounds{}, fmt.Errorf("the live producer of shard %d is snapshotting or has not yet re-anchored on this server (checkpoint of %q, server %q): "+
			"replay into the live topics once it streams", cfg.Shard, cp.Identity, srv.Identity)
	}
	b.limit = replay.Limit{Pos: mysql.Position{Name: cp.File, Pos: cp.Pos}, GTID: cp.GTID}
	if e := cp.EpochFrom; e != nil {
		b.floor = replay.Limit{Pos: mysql.Position{Name: e.File, Pos: e.Pos}, GTID: e.GTID}
		log.Info("a replay into the live topics starts no earlier than the live epoch's stream (earlier changes reached the consumers in its snapshot)",
			"epoch", cp.Epoch, "epoch_from_gtid", e.GTID, "epoch_from_file", e.File, "epoch_from_pos", e.Pos)
	} else {
		log.Warn("the live checkpoint does not say where its epoch starts (written by an older producer): a range from before the epoch's snapshot "+
			"publishes changes the consumers also got in the snapshot", "epoch", cp.Epoch)
	}
	return b, nil
}

// openSink opens where the messages go; publishing, it creates the topics
// that do not exist yet (--topic-prefix's), as the live producer does.
func openSink(ctx context.Context, cfg *Config, c *capture.Config, f replayFlags, stdout io.Writer) (replay.Sink, error) {
	switch f.output {
	case "":
	case "-":
		return replay.NewLines(stdout, nil), nil
	default:
		return createLines(f.output)
	}
	specs := make([]topics.Spec, 0, len(c.Tables)+1)
	for t := range c.Tables {
		specs = append(specs, cfg.Kafka.Topics.Changes(c.Topic(t)))
	}
	if c.TransactionMetadata {
		specs = append(specs, cfg.Kafka.Topics.Changes(capture.TransactionTopic(c.TopicPrefix)))
	}
	if c.Outbox.Table != "" {
		for _, a := range cfg.Capture.Outbox.AggregateTypes {
			specs = append(specs, cfg.Kafka.Topics.Changes(c.Outbox.TopicOf(a)))
		}
		c.Outbox.Ensure = func(ctx context.Context, topic string) error {
			return topics.Ensure(ctx, cfg.Kafka.Brokers, cfg.Kafka.Topics.Changes(topic))
		}
	}
	if err := topics.Ensure(ctx, cfg.Kafka.Brokers, specs...); err != nil {
		return nil, err
	}
	return &replay.Topics{W: capture.NewWriter(cfg.Kafka.Brokers, c.FlushRows), Batch: c.FlushRows}, nil
}

// createLines writes JSON lines to a temporary file renamed to path once
// the replay completed, so that a failed one leaves no partial file.
func createLines(path string) (replay.Sink, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("--output: %w", err)
	}
	return replay.NewLines(tmp, func(failed error) error {
		err := tmp.Close()
		if failed != nil || err != nil {
			os.Remove(tmp.Name())
			return err
		}
		return os.Rename(tmp.Name(), path)
	}), nil
}

// decoder is the replay's Encoder: the live capture's Decoder, told of
// each new file as the live stream is by the rotate events.
type decoder struct {
	dec  *capture.Decoder
	file string
	msgs []kafka.Message
}

// Event implements replay.Encoder.
func (d *decoder) Event(file string, ev *replication.BinlogEvent) ([]kafka.Message, error) {
	ctx := context.Background()
	var err error
	if file != d.file {
		d.file = file
		rotate := &replication.BinlogEvent{Header: &replication.EventHeader{EventType: replication.ROTATE_EVENT},
			Event: &replication.RotateEvent{Position: 4, NextLogName: []byte(file)}}
		if _, _, err = d.dec.Decode(ctx, nil, rotate); err != nil {
			return nil, err
		}
	}
	var end *capture.End
	d.msgs, end, err = d.dec.Decode(ctx, d.msgs[:0], ev)
	if end != nil && end.Span != nil {
		end.Span.End() // a traced transaction's span (only with tracing on)
	}
	return d.msgs, err
}
