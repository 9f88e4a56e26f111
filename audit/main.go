// Command audit checks the shards against the rules and the event files and
// prints every inconsistency; it exits 1 if it found any, 3 if it could not
// run. See internal/audit for what is checked.
package main

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"time"

	"github.com/shopledger/shopledger/internal/audit"
	"github.com/shopledger/shopledger/internal/cli"
	"github.com/shopledger/shopledger/internal/config"
	"github.com/shopledger/shopledger/internal/shard"
	"github.com/shopledger/shopledger/internal/spool"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// Config is the audit's configuration (audit.toml, or the environment).
type Config struct {
	Shared string      `mapstructure:"shared_dir"`
	Shards shard.Conns `mapstructure:"shards"`
	// StuckAfter is how long a (file, shard) row may stay in one stage
	// before the audit counts it as stuck.
	StuckAfter time.Duration `mapstructure:"stuck_after"`
	// Control is the instance holding pipeline_db and splitter_db.
	Control struct {
		Addr     string `mapstructure:"addr"`
		User     string `mapstructure:"user"`
		Password string `mapstructure:"password"`
	} `mapstructure:"control"`
}

func defaults() *Config {
	c := &Config{Shared: "./.data/shared", Shards: shard.DefaultConns(), StuckAfter: 10 * time.Minute}
	c.Control.Addr, c.Control.User = "127.0.0.1:33060", "reader"
	return c
}

// Validate names the bad key.
func (c *Config) Validate() error {
	var ch config.Checks
	c.Shards.Check(&ch, "shards")
	ch.Check(c.Control.Addr != "", "control.addr", "must be set")
	ch.Check(c.Shared != "", "shared_dir", "must be set")
	ch.Check(c.StuckAfter > 0, "stuck_after", "must be positive, got %s", c.StuckAfter)
	return ch.Err()
}

// Exit codes beyond the shared ones.
const (
	exitInconsistent = 1
	exitNoAudit      = 3
)

func main() {
	os.Exit(cli.App[Config]{
		Name: "audit",
		About: "checks the shards against the rules of SPEC §4 and the event files (every line of every finished file " +
			"accounted for once), and prints every inconsistency.",
		Defaults: defaults,
		Commands: []cli.Command[Config]{{Name: "run", About: "audit and print the report", Setup: cli.Run(cli.NoArgs(run))}},
		ExitCodes: map[int]string{exitInconsistent: "the audit found inconsistencies (each is printed)",
			exitNoAudit: "the audit could not run (a database unreachable, say)"},
	}.Main(os.Args[1:]))
}

func run(ctx context.Context, cfg *Config, _ []string) error {
	src := audit.Sources{Spool: spool.Dir(cfg.Shared), StuckAfter: cfg.StuckAfter}
	var err error
	open := func(db string) *sql.DB {
		d, e := sqldb.Open(sqldb.Config{Addr: cfg.Control.Addr, User: cfg.Control.User, Password: cfg.Control.Password, Database: db})
		err = errors.Join(err, e)
		return d
	}
	src.Pipeline, src.Splitter = open("pipeline_db"), open("splitter_db")
	if err != nil {
		return cli.Exit(exitNoAudit, err)
	}
	if src.Shards, err = cfg.Shards.Open(); err != nil {
		return cli.Exit(exitNoAudit, err)
	}
	rep, err := audit.Run(ctx, src)
	if err != nil {
		return cli.Exit(exitNoAudit, err)
	}
	rep.Print(os.Stdout)
	if !rep.OK() {
		return cli.Exit(exitInconsistent, nil)
	}
	return nil
}
