// Command pipelineapi serves the pipeline API of SPEC §3: it tracks every
// events file through every stage on every shard, in pipeline_db.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/shopledger/shopledger/internal/config"
	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/pipelineapi/internal/tracking"
	"github.com/shopledger/shopledger/schema"
)

func main() {
	path := flag.String("config", "", "TOML config file (default: built-in defaults and environment)")
	flag.Parse()
	cfg := defaults()
	if err := config.Load(*path, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "pipelineapi:", err)
		os.Exit(2)
	}
	log := logging.New(cfg.Logging, "pipelineapi")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		log.Error("exit", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg *Config) error {
	log := logging.New(cfg.Logging, "pipelineapi")
	if err := schema.Apply(ctx, cfg.Database, schema.Pipeline); err != nil {
		return err
	}
	db, err := sqldb.Open(cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	reg := httpapi.NewRegistry()
	h := tracking.NewHandler(tracking.NewStore(db), log, reg)
	return httpapi.Serve(ctx, cfg.Server, h, log)
}
