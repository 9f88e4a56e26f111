// Command shard-worker runs one shard's worker: the shard-worker and
// mysql-sender pipeline stages for shard --shard, applying events to that
// shard's database under the rules of SPEC §4.
package main

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sync/errgroup"

	"github.com/shopledger/shopledger/internal/cli"
	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/metrics"
	"github.com/shopledger/shopledger/internal/money"
	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/spool"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/tracing"
	"github.com/shopledger/shopledger/schema"
	"github.com/shopledger/shopledger/shard-worker/internal/ledger"
	"github.com/shopledger/shopledger/shard-worker/internal/worker"
)

func main() {
	os.Exit(cli.App[Config]{
		Name: "shard-worker",
		About: "one shard's worker: the shard-worker stage (validate the splitter's file, write the prepared file) " +
			"and the mysql-sender stage (apply it to the shard under the rules of SPEC §4); serves /health, /ready and /metrics.",
		Defaults: defaults,
		Shard:    true,
		Commands: []cli.Command[Config]{
			{Name: "run", About: "work the shard's tasks as they become ready", Setup: cli.Run(cli.NoArgs(run))},
		},
		Server: func(c *Config) httpapi.ServerConfig { return c.Server },
	}.Main(os.Args[1:]))
}

func run(ctx context.Context, cfg *Config, _ []string) error {
	log := logging.New(cfg.Logging, fmt.Sprintf("shard-worker-%d", cfg.Shard))
	stopTracing, err := tracing.Setup(ctx, cfg.Tracing, "shard-worker", tracing.Shard(cfg.Shard))
	if err != nil {
		return err
	}
	defer stopTracing()
	if err := schema.Await(ctx, cfg.Database, schema.Shard, log); err != nil {
		return err
	}
	db, err := sqldb.Open(cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	ib, _ := money.Parse(cfg.Worker.InitialBalance)
	l := ledger.New(db, ledger.Config{Shard: cfg.Shard, InitialBalance: ib, PendingDelay: cfg.Worker.PendingDelay,
		BulkLoad: cfg.Worker.BulkLoad})
	api := pipeline.NewClient(pipeline.ClientConfig{URL: cfg.Pipeline.URL, Timeout: cfg.Pipeline.Timeout, Retries: cfg.Pipeline.Retries})
	reg := metrics.New("shard-worker", cfg.Shard)
	w := worker.New(worker.Config{Shard: cfg.Shard, Spool: spool.Dir(cfg.Shared), BatchSize: cfg.Worker.BatchSize,
		PollInterval: cfg.Worker.PollInterval}, db, api, l, log, reg)
	g, ctx := errgroup.WithContext(ctx)
	locked := make(chan struct{})
	g.Go(func() error { return sqldb.HoldLock(ctx, db, worker.LockName, locked) })
	g.Go(func() error {
		select {
		case <-locked:
		case <-ctx.Done():
			return nil
		}
		return w.Run(ctx)
	})
	if cfg.Server.Port > 0 {
		h := httpapi.Router(fmt.Sprintf("shard-worker-%d", cfg.Shard), reg, db.PingContext, log)
		g.Go(func() error { return httpapi.Serve(ctx, cfg.Server, h, log) })
	}
	log.Info("started", "shard", cfg.Shard, "database", cfg.Database.Addr+"/"+cfg.Database.Database, "shared_dir", cfg.Shared)
	return g.Wait()
}
