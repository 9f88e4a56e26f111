// Package service is the command line both CDC consumers (balance, cache)
// share: serve (consume into the database and answer REST), reconcile
// (compare the database with the shards) and reset-offsets (make the
// consumer group read every topic again from its first offset).
package service

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/shopledger/shopledger/internal/config"
	"github.com/shopledger/shopledger/internal/consume"
	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/shard"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/schema"
)

// Config is a consumer's configuration file.
type Config struct {
	Server   httpapi.ServerConfig `mapstructure:"server"`
	Database sqldb.Config         `mapstructure:"database"`
	Kafka    consume.Config       `mapstructure:"kafka"`
	// Shards are read by reconcile only.
	Shards  shard.Conns    `mapstructure:"shards"`
	Logging logging.Config `mapstructure:"logging"`
}

// Validate names every bad key.
func (c *Config) Validate() error {
	var ch config.Checks
	ch.Check(c.Server.Port >= 0 && c.Server.Port < 65536, "server.port", "must be 0..65535, got %d", c.Server.Port)
	ch.Check(c.Database.Addr != "", "database.addr", "must be set")
	ch.Check(c.Database.Database != "", "database.database", "must be set")
	c.Kafka.Check(&ch)
	c.Shards.Check(&ch, "shards")
	if err := c.Logging.Validate(); err != nil {
		return err
	}
	return ch.Err()
}

// Parts are what a consumer brings over its migrated database.
type Parts struct {
	Stages    consume.Stages
	Reconcile func(ctx context.Context, shards []*sql.DB) ([]string, error)
	Handler   func(reg *prometheus.Registry, ready func(context.Context) error) http.Handler
}

// Spec names a consumer.
type Spec struct {
	Name   string
	Schema schema.Set
	Build  func(db *sql.DB, log *slog.Logger) Parts
}

const usage = `usage: %[1]s [serve] [--config FILE]
       %[1]s reconcile [--config FILE] [--wait DURATION]
       %[1]s reset-offsets [--config FILE]

serve          consume the change topics into the database and answer REST (default)
reconcile      compare the database with the shards; print every difference, exit 1 on any
reset-offsets  set the consumer group's offsets to the start of every topic (stop the group first)
`

// Main runs the command line args with cfg holding the defaults, and
// returns the exit code: 0 done, 1 differences found, 2 bad usage or
// configuration, 3 failure.
func Main(spec Spec, args []string, cfg *Config, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet(spec.Name+" "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, usage, spec.Name); fs.PrintDefaults() }
	path := fs.String("config", "", "TOML config file (default: built-in defaults and environment)")
	wait := fs.Duration("wait", 0, "reconcile: compare again until no difference is left or this much time has passed")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", spec.Name, fs.Arg(0))
		return 2
	}
	if err := config.Load(*path, cfg); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", spec.Name, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := logging.New(cfg.Logging, spec.Name)
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, spec, cfg, log)
	case "reconcile":
		var diffs []string
		if diffs, err = reconcile(ctx, spec, cfg, log, *wait); err == nil {
			for _, d := range diffs {
				fmt.Fprintln(stdout, d)
			}
			if len(diffs) > 0 {
				fmt.Fprintf(stdout, "%d differences\n", len(diffs))
				return 1
			}
			fmt.Fprintln(stdout, "no difference")
		}
	case "reset-offsets":
		var n int
		if n, err = consume.ResetOffsets(ctx, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Kafka.Topics); err == nil {
			fmt.Fprintf(stdout, "group %s: %d partitions reset to their first offset\n", cfg.Kafka.Group, n)
		}
	default:
		fmt.Fprintf(stderr, "%s: unknown command %q\n", spec.Name, cmd)
		fs.Usage()
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s %s: %v\n", spec.Name, cmd, err)
		return 3
	}
	return 0
}

func serve(ctx context.Context, spec Spec, cfg *Config, log *slog.Logger) error {
	if err := migrate(ctx, spec, cfg, log); err != nil {
		return err
	}
	db, err := sqldb.Open(cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	parts := spec.Build(db, log)
	reg := httpapi.NewRegistry()
	c := consume.New(cfg.Kafka, parts.Stages, reg, log)
	ready := func(ctx context.Context) error {
		if err := db.PingContext(ctx); err != nil {
			return fmt.Errorf("database: %w", err)
		}
		return c.Ready(ctx)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.Run(gctx) })
	if cfg.Server.Port > 0 {
		g.Go(func() error { return httpapi.Serve(gctx, cfg.Server, parts.Handler(reg, ready), log) })
	}
	log.Info("started", "database", cfg.Database.Addr+"/"+cfg.Database.Database, "brokers", cfg.Kafka.Brokers,
		"group", cfg.Kafka.Group, "topics", cfg.Kafka.Topics, "port", cfg.Server.Port)
	return g.Wait()
}

// migrate applies the schema, waiting for the database to come up.
func migrate(ctx context.Context, spec Spec, cfg *Config, log *slog.Logger) error {
	for attempt := 1; ; attempt++ {
		err := schema.Apply(ctx, cfg.Database, spec.Schema)
		if err == nil || ctx.Err() != nil || attempt == 30 {
			return err
		}
		log.Warn("database not ready; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func reconcile(ctx context.Context, spec Spec, cfg *Config, log *slog.Logger, wait time.Duration) ([]string, error) {
	db, err := sqldb.Open(cfg.Database)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	shards, err := cfg.Shards.Open()
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, s := range shards {
			s.Close()
		}
	}()
	parts := spec.Build(db, log)
	deadline := time.Now().Add(wait)
	for {
		diffs, err := parts.Reconcile(ctx, shards)
		if err != nil || len(diffs) == 0 || time.Now().After(deadline) {
			return diffs, err
		}
		log.Info("differences left; comparing again", "differences", len(diffs), "until", deadline.Format(time.TimeOnly))
		select {
		case <-ctx.Done():
			return nil, errors.New("interrupted")
		case <-time.After(time.Second):
		}
	}
}
