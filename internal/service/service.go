// Package service is the command line both CDC consumers (balance, cache)
// share: serve (consume into the database and answer REST), reconcile
// (compare the database with the shards), reset-offsets (move the consumer
// group's offsets, as kafka-consumer-groups does), rebuild (empty the
// database and consume everything again, then reconcile) and
// replay-dead-letters.
package service

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/shopledger/shopledger/internal/cli"
	"github.com/shopledger/shopledger/internal/config"
	"github.com/shopledger/shopledger/internal/consume"
	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/metrics"
	"github.com/shopledger/shopledger/internal/shard"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/tracing"
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
	// Tracing sends spans to an OTLP collector; off without an endpoint.
	Tracing tracing.Config `mapstructure:"tracing"`
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
	if err := c.Tracing.Validate(); err != nil {
		return err
	}
	return ch.Err()
}

// Parts are what a consumer brings over its migrated database.
type Parts[C any] struct {
	Handler   consume.Handler[C]
	Reconcile func(ctx context.Context, shards []*sql.DB) ([]string, error)
	HTTP      func(reg httpapi.Metrics, ready func(context.Context) error) http.Handler
}

// Spec names a consumer whose changes decode into C.
type Spec[C any] struct {
	Name   string
	About  string // for --help
	Schema schema.Set
	Build  func(db *sql.DB, log *slog.Logger) Parts[C]
}

// Exit codes of reconcile: differences found, or no comparison made.
const (
	ExitDifferences = 1
	ExitNoCompare   = 3
)

// App is the consumer's command line: serve (the default), reconcile,
// replay-dead-letters, reset-offsets and rebuild, plus config and
// healthcheck.
func App[C any](spec Spec[C], defaults func() *Config) cli.App[Config] {
	return cli.App[Config]{
		Name:     spec.Name,
		About:    spec.About,
		Defaults: defaults,
		Commands: []cli.Command[Config]{
			{Name: "serve", About: "consume the change topics into the database and answer REST", Setup: cli.Run(cli.NoArgs(
				func(ctx context.Context, cfg *Config, _ []string) error {
					return serve(ctx, spec, cfg, logging.New(cfg.Logging, spec.Name))
				}))},
			{Name: "reconcile", About: "compare the database with the shards; print every difference, exit 1 on any",
				Setup: func(fs *flag.FlagSet) cli.Runner[Config] {
					wait := fs.Duration("wait", 0, "compare again until no difference is left or this much time has passed")
					return cli.NoArgs(func(ctx context.Context, cfg *Config, _ []string) error {
						db, err := sqldb.Open(cfg.Database)
						if err != nil {
							return cli.Exit(ExitNoCompare, err)
						}
						defer db.Close()
						log := logging.New(cfg.Logging, spec.Name)
						return report(reconcile(ctx, spec.Build(db, log), cfg, log, *wait, nil))
					})
				}},
			{Name: "replay-dead-letters", About: "apply the dead letters that decode now (their cause mended), each once; list the others",
				Setup: cli.Run(cli.NoArgs(func(ctx context.Context, cfg *Config, _ []string) error {
					return replayDeadLetters(ctx, spec, cfg)
				}))},
			{Name: "reset-offsets", About: "move the consumer group's offsets (to the first offsets by default), as kafka-consumer-groups --reset-offsets does; the group must be stopped",
				Setup: resetOffsets},
			{Name: "rebuild", About: "empty the database and consume every change again from the first offsets, with progress, then reconcile (exit codes as reconcile); the group must be stopped",
				Setup: func(fs *flag.FlagSet) cli.Runner[Config] { return rebuildCommand(spec, fs) }},
		},
		Server: func(c *Config) httpapi.ServerConfig { return c.Server },
		ExitCodes: map[int]string{ExitDifferences: "reconcile or rebuild found differences, or replay-dead-letters left dead letters (each is printed)",
			ExitNoCompare: "reconcile could not compare (a database unreachable, say), or rebuild refused or failed before comparing"},
	}
}

func serve[C any](ctx context.Context, spec Spec[C], cfg *Config, log *slog.Logger) error {
	if err := schema.Await(ctx, cfg.Database, spec.Schema, log); err != nil {
		return err
	}
	db, err := sqldb.Open(cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	stopTracing, err := tracing.Setup(ctx, cfg.Tracing, spec.Name)
	if err != nil {
		return err
	}
	defer stopTracing()
	parts := spec.Build(db, log)
	reg := metrics.New(spec.Name, -1)
	c := consume.New(cfg.Kafka, db, parts.Handler, reg, log)
	ready := func(ctx context.Context) error {
		if err := db.PingContext(ctx); err != nil {
			return fmt.Errorf("database: %w", err)
		}
		if err := c.Ready(ctx); err != nil {
			return err
		}
		if n, topic := c.DeadLetters(); n > 0 {
			return fmt.Errorf("%w: %d changes sent to the dead-letter topic %s since the start (replay-dead-letters applies them once mended)",
				httpapi.ErrDegraded, n, topic)
		}
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.Run(gctx) })
	if cfg.Server.Port > 0 {
		g.Go(func() error { return httpapi.Serve(gctx, cfg.Server, parts.HTTP(reg, ready), log) })
	}
	log.Info("started", "database", cfg.Database.Addr+"/"+cfg.Database.Database, "brokers", cfg.Kafka.Brokers,
		"group", cfg.Kafka.Group, "topics", cfg.Kafka.Topics, "port", cfg.Server.Port)
	return g.Wait()
}

func replayDeadLetters[C any](ctx context.Context, spec Spec[C], cfg *Config) error {
	if err := schema.Await(ctx, cfg.Database, spec.Schema, logging.New(cfg.Logging, spec.Name)); err != nil {
		return err
	}
	db, err := sqldb.Open(cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	parts := spec.Build(db, logging.New(cfg.Logging, spec.Name))
	rep, err := consume.ReplayDeadLetters(ctx, cfg.Kafka, db, parts.Handler)
	if err != nil {
		return err
	}
	for _, d := range rep.StillDead {
		fmt.Println("still dead:", d)
	}
	fmt.Printf("%s: %d dead letters applied, %d applied before, %d superseded by a newer snapshot, %d still cannot be applied\n",
		cfg.Kafka.DeadLetterTopic, rep.Applied, rep.Before, rep.Superseded, len(rep.StillDead))
	if len(rep.StillDead) > 0 {
		return cli.Exit(ExitDifferences, nil)
	}
	return nil
}

// report prints reconcile's differences and returns its exit.
func report(diffs []string, err error) error {
	if err != nil {
		return cli.Exit(ExitNoCompare, err)
	}
	for _, d := range diffs {
		fmt.Println(d)
	}
	if len(diffs) > 0 {
		fmt.Printf("%d differences\n", len(diffs))
		return cli.Exit(ExitDifferences, nil)
	}
	fmt.Println("no difference")
	return nil
}

// reconcile compares the state with the shards, again every second while
// differences are left and wait has not passed, calling between (when not
// nil) before each new comparison.
func reconcile[C any](ctx context.Context, parts Parts[C], cfg *Config, log *slog.Logger, wait time.Duration, between func(context.Context) error) ([]string, error) {
	shards, err := cfg.Shards.Open()
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, s := range shards {
			s.Close()
		}
	}()
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
		if between != nil {
			if err := between(ctx); err != nil {
				return nil, err
			}
		}
	}
}
