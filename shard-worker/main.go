// Command shard-worker runs one shard's worker: the shard-worker and
// mysql-sender pipeline stages for shard --shard, applying events to that
// shard's database under the rules of SPEC §4.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/shopledger/shopledger/internal/config"
	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/money"
	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/spool"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/schema"
	"github.com/shopledger/shopledger/shard-worker/internal/ledger"
	"github.com/shopledger/shopledger/shard-worker/internal/worker"
)

func main() {
	path := flag.String("config", "", "TOML config file (default: built-in defaults and environment)")
	shardFlag := flag.Int("shard", -1, "shard number this worker owns (overrides the config key shard)")
	flag.Parse()
	cfg := defaults()
	if *shardFlag >= 0 {
		os.Setenv("SHARD", fmt.Sprint(*shardFlag))
	}
	if err := config.Load(*path, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "shard-worker:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := logging.New(cfg.Logging, fmt.Sprintf("shard-worker-%d", cfg.Shard))
	if err := run(ctx, cfg); err != nil {
		log.Error("exit", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg *Config) error {
	log := logging.New(cfg.Logging, fmt.Sprintf("shard-worker-%d", cfg.Shard))
	if err := schema.Apply(ctx, cfg.Database, schema.Shard); err != nil {
		return err
	}
	db, err := sqldb.Open(cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	ib, _ := money.Parse(cfg.Worker.InitialBalance)
	l := ledger.New(db, ledger.Config{Shard: cfg.Shard, InitialBalance: ib, PendingDelay: cfg.Worker.PendingDelay})
	api := pipeline.NewClient(pipeline.ClientConfig{URL: cfg.Pipeline.URL, Timeout: cfg.Pipeline.Timeout, Retries: cfg.Pipeline.Retries})
	reg := httpapi.NewRegistry()
	w := worker.New(worker.Config{Shard: cfg.Shard, Spool: spool.Dir(cfg.Shared), BatchSize: cfg.Worker.BatchSize,
		PollInterval: cfg.Worker.PollInterval}, db, api, l, log, reg)
	g, ctx := errgroup.WithContext(ctx)
	locked := make(chan struct{})
	g.Go(func() error { return worker.HoldWriterLock(ctx, db, locked) })
	g.Go(func() error {
		select {
		case <-locked:
		case <-ctx.Done():
			return nil
		}
		return w.Run(ctx)
	})
	if cfg.Server.Port > 0 {
		h := httpapi.Router(fmt.Sprintf("shard-worker-%d", cfg.Shard), reg, db.PingContext)
		g.Go(func() error { return httpapi.Serve(ctx, cfg.Server, h, log) })
	}
	log.Info("started", "shard", cfg.Shard, "database", cfg.Database.Addr+"/"+cfg.Database.Database, "shared_dir", cfg.Shared)
	return g.Wait()
}
