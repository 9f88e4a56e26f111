// Command cdc-producer reads one shard's binlog as a replica and publishes
// every row change of the captured tables to Kafka as Debezium change
// events (SPEC §5), resuming from a checkpoint kept in a compacted topic.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	_ "github.com/go-sql-driver/mysql"
	"golang.org/x/sync/errgroup"

	"github.com/shopledger/shopledger/cdc-producer/internal/capture"
	"github.com/shopledger/shopledger/internal/cli"
	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/metrics"
	"github.com/shopledger/shopledger/internal/topics"
	"github.com/shopledger/shopledger/internal/tracing"
)

// exitFatal is the exit code of errors a restart cannot mend.
const exitFatal = 3

func main() {
	os.Exit(cli.App[Config]{
		Name: "cdc-producer",
		About: "reads one shard's binlog as a replica and publishes every row change of the captured tables to Kafka " +
			"as Debezium change events (SPEC §5) and routes the transactional outbox's inserts as Debezium's Outbox Event Router, " +
			"resuming from a checkpoint kept in a compacted topic; serves /health, /ready and /metrics.",
		Defaults: defaults,
		Shard:    true,
		Commands: []cli.Command[Config]{
			{Name: "run", About: "stream the shard's changes to Kafka", Setup: cli.Run(cli.NoArgs(run))},
			{Name: "replay", About: "publish a binlog range of the shard again as this producer published it (--from POS [--to POS]), " +
				"to the live topics, to --topic-prefix's or as JSON lines to --output; never moves the live checkpoint",
				Setup: replayCommand},
		},
		Server:    func(c *Config) httpapi.ServerConfig { return c.Server },
		ExitCodes: map[int]string{exitFatal: "a fatal capture error that restarting cannot mend (purged binlog, checkpoint of another server, missing binlog settings)"},
	}.Main(os.Args[1:]))
}

func run(ctx context.Context, cfg *Config, _ []string) error {
	log := logging.New(cfg.Logging, fmt.Sprintf("cdc-producer-%d", cfg.Shard))
	stopTracing, err := tracing.Setup(ctx, cfg.Tracing, "cdc-producer", tracing.Shard(cfg.Shard))
	if err != nil {
		return err
	}
	defer stopTracing()
	err = stream(ctx, cfg, log)
	if errors.Is(err, capture.ErrFatal) {
		return cli.Exit(exitFatal, err)
	}
	return err
}

func stream(ctx context.Context, cfg *Config, log *slog.Logger) error {
	tables := cfg.tables()
	specs := []topics.Spec{cfg.Kafka.Topics.Compacted(cfg.Kafka.CheckpointTopic)}
	if cfg.Heartbeat.Interval > 0 {
		specs = append(specs, cfg.Kafka.Topics.Compacted(capture.HeartbeatTopic(cfg.Kafka.TopicPrefix)))
	}
	if cfg.Capture.TransactionMetadata {
		specs = append(specs, cfg.Kafka.Topics.Changes(capture.TransactionTopic(cfg.Kafka.TopicPrefix)))
	}
	for t := range tables {
		specs = append(specs, cfg.Kafka.Topics.Changes(topics.Table(cfg.Kafka.TopicPrefix, t)))
	}
	outbox := cfg.outbox()
	if outbox.Table != "" {
		for _, a := range cfg.Capture.Outbox.AggregateTypes {
			specs = append(specs, cfg.Kafka.Topics.Changes(outbox.TopicOf(a)))
		}
		outbox.Ensure = func(ctx context.Context, topic string) error {
			return topics.Ensure(ctx, cfg.Kafka.Brokers, cfg.Kafka.Topics.Changes(topic))
		}
	}
	if err := topics.Ensure(ctx, cfg.Kafka.Brokers, specs...); err != nil {
		return err
	}
	reg := metrics.New("cdc-producer", cfg.Shard)
	cps := capture.NewCheckpoints(cfg.Kafka.Brokers, cfg.Kafka.CheckpointTopic)
	defer cps.Close()
	ccfg := cfg.capture()
	ccfg.Outbox = outbox
	c := capture.New(ccfg, cfg.Kafka.Brokers, cps, log, capture.NewMetrics(reg))
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.Run(ctx) })
	if cfg.Server.Port > 0 {
		h := httpapi.Router(fmt.Sprintf("cdc-producer-%d", cfg.Shard), reg, c.Ready, log)
		g.Go(func() error { return httpapi.Serve(ctx, cfg.Server, h, log) })
	}
	log.Info("started", "shard", cfg.Shard, "database", cfg.Database.Addr+"/"+cfg.Database.Database, "brokers", cfg.Kafka.Brokers)
	return g.Wait()
}
