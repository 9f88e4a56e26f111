// Command shard-splitter runs the shard-splitter stage: every events file is
// split into one file per shard, routed by shop (SPEC §2).
package main

import (
	"context"
	"errors"
	"os"

	"golang.org/x/sync/errgroup"

	"github.com/shopledger/shopledger/internal/cli"
	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/metrics"
	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/spool"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/tracing"
	"github.com/shopledger/shopledger/schema"
	"github.com/shopledger/shopledger/shard-splitter/internal/splitter"
)

func main() {
	os.Exit(cli.App[Config]{
		Name: "shard-splitter",
		About: "the shard-splitter stage (SPEC §2): splits every events file into one file per shard, routed by " +
			"shop_id % N (returns without shop_id by their purchase); serves /health, /ready and /metrics.",
		Defaults: defaults,
		Commands: []cli.Command[Config]{
			{Name: "run", About: "split files as they become ready", Setup: cli.Run(cli.NoArgs(run))},
		},
		Server: func(c *Config) httpapi.ServerConfig { return c.Server },
	}.Main(os.Args[1:]))
}

func run(ctx context.Context, cfg *Config, _ []string) error {
	log := logging.New(cfg.Logging, "shard-splitter")
	stopTracing, err := tracing.Setup(ctx, cfg.Tracing, "shard-splitter")
	if err != nil {
		return err
	}
	defer stopTracing()
	if err := schema.Await(ctx, cfg.Database, schema.Splitter, log); err != nil {
		return err
	}
	db, err := sqldb.Open(cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	api := pipeline.NewClient(pipeline.ClientConfig{URL: cfg.Pipeline.URL, Timeout: cfg.Pipeline.Timeout, Retries: cfg.Pipeline.Retries})
	reg := metrics.New("shard-splitter", -1)
	s := splitter.New(splitter.Config{Spool: spool.Dir(cfg.Shared), Shards: cfg.Pipeline.ShardsCount,
		PollInterval: cfg.Splitter.PollInterval, ReturnHold: cfg.Splitter.ReturnHold}, db, api, log, reg)
	g, ctx := errgroup.WithContext(ctx)
	locked := make(chan struct{})
	g.Go(func() error { return sqldb.HoldLock(ctx, db, splitter.LockName, locked) })
	g.Go(func() error {
		select {
		case <-locked:
		case <-ctx.Done():
			return nil
		}
		return s.Run(ctx)
	})
	if cfg.Server.Port > 0 {
		// Ready once it holds the lock: a second splitter waiting for it
		// is not serving.
		ready := func(ctx context.Context) error {
			select {
			case <-locked:
				return db.PingContext(ctx)
			default:
				return errors.New("waiting for the splitter lock (held by another splitter?)")
			}
		}
		h := httpapi.Router("shard-splitter", reg, ready, log)
		g.Go(func() error { return httpapi.Serve(ctx, cfg.Server, h, log) })
	}
	log.Info("started", "shards", cfg.Pipeline.ShardsCount, "shared_dir", cfg.Shared)
	return g.Wait()
}
