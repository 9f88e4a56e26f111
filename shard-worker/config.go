package main

import (
	"fmt"
	"time"

	"github.com/shopledger/shopledger/internal/config"
	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/money"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/tracing"
)

// Config is shard-worker's configuration (shard-worker.toml). The shard
// number comes from --shard or the key `shard`.
type Config struct {
	Shard    int    `mapstructure:"shard"`
	Shared   string `mapstructure:"shared_dir"`
	Pipeline struct {
		URL     string        `mapstructure:"url"`
		Timeout time.Duration `mapstructure:"timeout"`
		Retries int           `mapstructure:"retries"`
	} `mapstructure:"pipeline"`
	// Database is this shard's database; an empty addr means 127.0.0.1 on
	// port 33061+shard, the local stack's layout.
	Database sqldb.Config `mapstructure:"database"`
	Worker   struct {
		BatchSize      int           `mapstructure:"batch_size"`
		PollInterval   time.Duration `mapstructure:"poll_interval"`
		InitialBalance string        `mapstructure:"initial_balance"`
		PendingDelay   time.Duration `mapstructure:"pending_delay"`
		// BulkLoad writes new rows with LOAD DATA LOCAL INFILE when the
		// shard's server allows it (local_infile).
		BulkLoad bool `mapstructure:"bulk_load"`
	} `mapstructure:"worker"`
	// Server serves /health, /ready and /metrics; port 0 means 8090 + shard
	// (SPEC §6), -1 disables it.
	Server  httpapi.ServerConfig `mapstructure:"server"`
	Logging logging.Config       `mapstructure:"logging"`
	// Tracing sends spans to an OTLP collector; off without an endpoint.
	Tracing tracing.Config `mapstructure:"tracing"`
}

func defaults() *Config {
	c := &Config{Shard: -1, Shared: "./.data/shared", Logging: logging.Default, Tracing: tracing.Default}
	c.Pipeline.URL = "http://127.0.0.1:8082/api/v1/pipeline"
	c.Pipeline.Timeout = 5 * time.Second
	c.Pipeline.Retries = 5
	c.Database = sqldb.Config{User: "worker", Database: "shop"}
	c.Worker.BatchSize = 5000
	c.Worker.PollInterval = 500 * time.Millisecond
	c.Worker.InitialBalance = "1000.00"
	c.Worker.PendingDelay = 5 * time.Minute
	c.Worker.BulkLoad = true
	c.Server = httpapi.ServerConfig{Host: "127.0.0.1", ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	return c
}

// Validate names the bad key.
func (c *Config) Validate() error {
	var ch config.Checks
	ch.Check(c.Shard >= 0, "shard", "must be set (--shard or shard = N), got %d", c.Shard)
	ch.Check(c.Shared != "", "shared_dir", "must be set")
	ch.Check(c.Pipeline.URL != "", "pipeline.url", "must be set")
	ch.Check(c.Worker.BatchSize >= 1 && c.Worker.BatchSize <= 50000, "worker.batch_size", "must be 1..50000, got %d", c.Worker.BatchSize)
	ch.Check(c.Worker.PollInterval > 0, "worker.poll_interval", "must be positive")
	ch.Check(c.Worker.PendingDelay > 0, "worker.pending_delay", "must be positive")
	ib, err := money.Parse(c.Worker.InitialBalance)
	ch.Check(err == nil && ib >= 0, "worker.initial_balance", "must be a non-negative amount, got %q", c.Worker.InitialBalance)
	ch.Check(c.Server.Port >= -1 && c.Server.Port < 65536, "server.port", "must be -1 (no server), 0 (8090 + shard) or a port, got %d", c.Server.Port)
	if err := c.Logging.Validate(); err != nil {
		return err
	}
	if err := c.Tracing.Validate(); err != nil {
		return err
	}
	if c.Shard >= 0 {
		if c.Database.Addr == "" {
			c.Database.Addr = fmt.Sprintf("127.0.0.1:%d", 33061+c.Shard)
		}
		if c.Server.Port == 0 {
			c.Server.Port = 8090 + c.Shard
		}
	}
	return ch.Err()
}
