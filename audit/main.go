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
	"github.com/shopledger/shopledger/internal/spool"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// Config is the audit's configuration (audit.toml, or the environment).
type Config struct {
	Shared      string `mapstructure:"shared_dir"`
	ShardsCount int    `mapstructure:"shards_count"`
	// ShardAddrs lists host:port per shard; empty means 127.0.0.1:33061+i.
	ShardAddrs  []string `mapstructure:"shard_addrs"`
	ShardDB     string   `mapstructure:"shard_database"`
	ControlAddr string   `mapstructure:"control_addr"`
	User        string   `mapstructure:"user"`
	Password    string   `mapstructure:"password"`
}

// Validate names the bad key.
func (c *Config) Validate() error {
	var ch config.Checks
	ch.Check(c.ShardsCount >= 1, "shards_count", "must be at least 1, got %d", c.ShardsCount)
	ch.Check(len(c.ShardAddrs) == 0 || len(c.ShardAddrs) == c.ShardsCount, "shard_addrs", "must list %d addresses, got %d", c.ShardsCount, len(c.ShardAddrs))
	return ch.Err()
}

func main() {
	path := flag.String("config", "", "TOML config file (default: built-in defaults and environment)")
	flag.Parse()
	cfg := &Config{Shared: "./.data/shared", ShardsCount: 2, ShardDB: "shop", ControlAddr: "127.0.0.1:33060", User: "root"}
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
	for i := range cfg.ShardsCount {
		addr := fmt.Sprintf("127.0.0.1:%d", 33061+i)
		if len(cfg.ShardAddrs) > 0 {
			addr = cfg.ShardAddrs[i]
		}
		src.Shards = append(src.Shards, open(addr, cfg.ShardDB))
	}
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
