package service

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/shopledger/shopledger/internal/cli"
	"github.com/shopledger/shopledger/internal/consume"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/schema"
)

// rebuildCommand is the rebuild command: empty the state, consume every
// change again with progress on stderr, then reconcile (see
// consume.Rebuild). Its exit codes are reconcile's; a rebuild refused or
// failed compares nothing (ExitNoCompare).
func rebuildCommand[C any](spec Spec[C], fs *flag.FlagSet) cli.Runner[Config] {
	force := fs.Bool("force", false, "rebuild even from topics that no longer start at offset 0 (retention removed changes): the state then lacks them")
	wait := fs.Duration("wait", 0, "while differences are left, consume what arrived since and compare again, until none is left or this much time has passed")
	return cli.NoArgs(func(ctx context.Context, cfg *Config, _ []string) error {
		log := logging.New(cfg.Logging, spec.Name)
		if err := schema.Await(ctx, cfg.Database, spec.Schema, log); err != nil {
			return cli.Exit(ExitNoCompare, err)
		}
		db, err := sqldb.Open(cfg.Database)
		if err != nil {
			return cli.Exit(ExitNoCompare, err)
		}
		defer db.Close()
		parts := spec.Build(db, log)
		start := time.Now()
		out, err := consume.Rebuild(ctx, cfg.Kafka, db, parts.Handler, consume.RebuildOptions{Force: *force, Progress: newProgress(os.Stderr)}, log)
		if err != nil {
			return cli.Exit(ExitNoCompare, fmt.Errorf("rebuild: %w", err))
		}
		took := time.Since(start)
		for _, t := range out.Truncated {
			fmt.Printf("warning: %s (forced): the changes before it are missing from the state\n", t)
		}
		fmt.Printf("rebuilt %s from %d partitions in %s: %d changes (%.0f/s): %d applied, %d duplicates, %d superseded, %d dead letters, %d tombstones\n",
			cfg.Database.Database, len(out.Ranges), took.Round(time.Millisecond), out.Handled(), float64(out.Handled())/max(took.Seconds(), 1e-3),
			out.Applied, out.Duplicates, out.Superseded, out.Dead, out.Tombstones)
		catchUp := func(ctx context.Context) error {
			_, err := consume.CatchUp(ctx, cfg.Kafka, db, parts.Handler, nil, log)
			return err
		}
		return report(reconcile(ctx, parts, cfg, log, *wait, catchUp))
	})
}
