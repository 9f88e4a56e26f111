// Command cdc-producer reads one shard's binlog as a replica and publishes
// every row change of the captured tables to Kafka as Debezium change
// events (SPEC §5), resuming from a checkpoint kept in a compacted topic.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/go-sql-driver/mysql"
	"golang.org/x/sync/errgroup"

	"github.com/shopledger/shopledger/cdc-producer/internal/capture"
	"github.com/shopledger/shopledger/internal/config"
	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/topics"
)

func main() {
	path := flag.String("config", "", "TOML config file (default: built-in defaults and environment)")
	shardFlag := flag.Int("shard", -1, "shard to capture (overrides the config key shard)")
	flag.Parse()
	if *shardFlag >= 0 {
		os.Setenv("SHARD", fmt.Sprint(*shardFlag))
	}
	cfg := defaults()
	if err := config.Load(*path, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "cdc-producer:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		logging.New(cfg.Logging, fmt.Sprintf("cdc-producer-%d", cfg.Shard)).Error("exit", "err", err)
		if errors.Is(err, capture.ErrFatal) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg *Config) error {
	log := logging.New(cfg.Logging, fmt.Sprintf("cdc-producer-%d", cfg.Shard))
	tables := cfg.tables()
	specs := []topics.Spec{{Name: cfg.Kafka.CheckpointTopic, Partitions: 1, Compacted: true}}
	for t := range tables {
		specs = append(specs, topics.Spec{Name: cfg.Kafka.TopicPrefix + "." + t, Partitions: cfg.Kafka.Partitions})
	}
	if err := topics.Ensure(ctx, cfg.Kafka.Brokers, specs...); err != nil {
		return err
	}
	reg := httpapi.NewRegistry()
	cps := capture.NewCheckpoints(cfg.Kafka.Brokers, cfg.Kafka.CheckpointTopic)
	defer cps.Close()
	c := capture.New(capture.Config{Shard: cfg.Shard, Addr: cfg.Database.Addr, User: cfg.Database.User, Password: cfg.Database.Password,
		Database: cfg.Database.Database, Flavor: cfg.Capture.Flavor, ServerID: cfg.Capture.ServerID, Tables: tables,
		TopicPrefix: cfg.Kafka.TopicPrefix, FlushRows: cfg.Capture.FlushRows, Snapshot: cfg.Capture.SnapshotMode},
		cfg.Kafka.Brokers, cps, log, capture.NewMetrics(reg, cfg.Shard))
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.Run(ctx) })
	if cfg.Server.Port > 0 {
		h := httpapi.Router(fmt.Sprintf("cdc-producer-%d", cfg.Shard), reg, c.Ready)
		g.Go(func() error { return httpapi.Serve(ctx, cfg.Server, h, log) })
	}
	log.Info("started", "shard", cfg.Shard, "database", cfg.Database.Addr+"/"+cfg.Database.Database, "brokers", cfg.Kafka.Brokers)
	return g.Wait()
}
