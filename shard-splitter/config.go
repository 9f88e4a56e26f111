package main

import (
	"time"

	"github.com/shopledger/shopledger/internal/config"
	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/tracing"
)

// Config is shard-splitter's configuration (shard-splitter.toml).
type Config struct {
	Shared   string `mapstructure:"shared_dir"`
	Pipeline struct {
		URL         string        `mapstructure:"url"`
		ShardsCount int           `mapstructure:"shards_count"`
		Timeout     time.Duration `mapstructure:"timeout"`
		Retries     int           `mapstructure:"retries"`
	} `mapstructure:"pipeline"`
	// Database is splitter_db, where the order index and held returns live.
	Database sqldb.Config `mapstructure:"database"`
	Splitter struct {
		PollInterval time.Duration `mapstructure:"poll_interval"`
		ReturnHold   time.Duration `mapstructure:"return_hold"`
	} `mapstructure:"splitter"`
	// Server serves /health, /ready and /metrics; port -1 disables it.
	Server  httpapi.ServerConfig `mapstructure:"server"`
	Logging logging.Config       `mapstructure:"logging"`
	// Tracing sends spans to an OTLP collector; off without an endpoint.
	Tracing tracing.Config `mapstructure:"tracing"`
}

func defaults() *Config {
	c := &Config{Shared: "./.data/shared", Logging: logging.Default, Tracing: tracing.Default}
	c.Pipeline.URL = "http://127.0.0.1:8082/api/v1/pipeline"
	c.Pipeline.ShardsCount = 2
	c.Pipeline.Timeout = 5 * time.Second
	c.Pipeline.Retries = 5
	c.Database = sqldb.Config{Addr: "127.0.0.1:33060", User: "splitter", Database: "splitter_db"}
	c.Splitter.PollInterval = 500 * time.Millisecond
	c.Splitter.ReturnHold = 5 * time.Minute
	c.Server = httpapi.ServerConfig{Host: "127.0.0.1", Port: 8085, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	return c
}

// Validate names the bad key.
func (c *Config) Validate() error {
	var ch config.Checks
	ch.Check(c.Shared != "", "shared_dir", "must be set")
	ch.Check(c.Pipeline.URL != "", "pipeline.url", "must be set")
	ch.Check(c.Pipeline.ShardsCount >= 1 && c.Pipeline.ShardsCount <= 1024, "pipeline.shards_count", "must be 1..1024, got %d", c.Pipeline.ShardsCount)
	ch.Check(c.Splitter.PollInterval > 0, "splitter.poll_interval", "must be positive")
	ch.Check(c.Splitter.ReturnHold > 0, "splitter.return_hold", "must be positive")
	ch.Check(c.Database.Addr != "", "database.addr", "must be set")
	ch.Check(c.Server.Port == -1 || c.Server.Port > 0 && c.Server.Port < 65536, "server.port", "must be -1 (no server) or 1..65535, got %d", c.Server.Port)
	if err := c.Logging.Validate(); err != nil {
		return err
	}
	if err := c.Tracing.Validate(); err != nil {
		return err
	}
	return ch.Err()
}
