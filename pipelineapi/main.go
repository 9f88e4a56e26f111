// Command pipelineapi serves the pipeline API of SPEC §3: it tracks every
// events file through every stage on every shard, in pipeline_db.
package main

import (
	"context"
	"os"

	"github.com/shopledger/shopledger/internal/cli"
	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/metrics"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/tracing"
	"github.com/shopledger/shopledger/pipelineapi/internal/tracking"
	"github.com/shopledger/shopledger/schema"
)

func main() {
	os.Exit(cli.App[Config]{
		Name:     "pipelineapi",
		About:    "the pipeline API (SPEC §3): tracks every events file through every stage on every shard, in pipeline_db.",
		Defaults: defaults,
		Commands: []cli.Command[Config]{
			{Name: "serve", About: "serve the pipeline API, /health, /ready and /metrics", Setup: cli.Run(cli.NoArgs(serve))},
		},
		Server: func(c *Config) httpapi.ServerConfig { return c.Server },
	}.Main(os.Args[1:]))
}

func serve(ctx context.Context, cfg *Config, _ []string) error {
	log := logging.New(cfg.Logging, "pipelineapi")
	stopTracing, err := tracing.Setup(ctx, cfg.Tracing, "pipelineapi")
	if err != nil {
		return err
	}
	defer stopTracing()
	if err := schema.Await(ctx, cfg.Database, schema.Pipeline, log); err != nil {
		return err
	}
	db, err := sqldb.Open(cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	reg := metrics.New("pipelineapi", -1)
	h := tracking.NewHandler(tracking.NewStore(db), log, reg)
	return httpapi.Serve(ctx, cfg.Server, h, log)
}
