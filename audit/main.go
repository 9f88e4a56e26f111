// Command audit checks the shards against the rules and the event files and
// prints every inconsistency; it exits 1 if it found any, 2 if it could not
// run. See internal/audit for what is checked.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/shopledger/shopledger/internal/audit"
	"github.com/shopledger/shopledger/internal/config"
	"github.com/shopledger/shopledger/internal/shard"
	"github.com/shopledger/shopledger/internal/spool"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// Config is the audit's configuration (audit.toml, or the environment).
type Config struct {
	Shared string      `mapstructure:"shared_dir"`
	Shards shard.Conns `mapstructure:"shards"`
	// ControlAddr holds pipeline_db and splitter_db; User and Password
	// log in there.
	ControlAddr string `mapstructure:"control_addr"`
	User        string `mapstructure:"user"`
	Password    string `mapstructure:"password"`
}

func defaults() *Config {
	return &Config{Shared: "./.data/shared", Shards: shard.DefaultConns(), ControlAddr: "127.0.0.1:33060", User: "root"}
}

// Validate names the bad key.
func (c *Config) Validate() error {
	var ch config.Checks
	c.Shards.Check(&ch, "shards")
	ch.Check(c.ControlAddr != "", "control_addr", "must be set")
	return ch.Err()
}

func main() {
	path := flag.String("config", "", "TOML config file (default: built-in defaults and environment)")
	flag.Parse()
	cfg := defaults()
	if err := config.Load(*path, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "audit:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	open := func(addr, db string) *sql.DB {
		d, err := sqldb.Open(sqldb.Config{Addr: addr, User: cfg.User, Password: cfg.Password, Database: db})
		if err != nil {
			fmt.Fprintln(os.Stderr, "audit:", err)
			os.Exit(2)
		}
		return d
	}
	src := audit.Sources{Spool: spool.Dir(cfg.Shared),
		Pipeline: open(cfg.ControlAddr, "pipeline_db"), Splitter: open(cfg.ControlAddr, "splitter_db")}
	shards, err := cfg.Shards.Open()
	if err != nil {
		fmt.Fprintln(os.Stderr, "audit:", err)
		os.Exit(2)
	}
	src.Shards = shards
	rep, err := audit.Run(ctx, src)
	if err != nil {
		fmt.Fprintln(os.Stderr, "audit:", err)
		os.Exit(2)
	}
	rep.Print(os.Stdout)
	if !rep.OK() {
		os.Exit(1)
	}
}
