package main

import (
	"github.com/shopledger/shopledger/internal/config"
	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/tracing"
)

// Config is pipelineapi's configuration (pipelineapi.toml).
type Config struct {
	Server   httpapi.ServerConfig `mapstructure:"server"`
	Database sqldb.Config         `mapstructure:"database"`
	Logging  logging.Config       `mapstructure:"logging"`
	// Tracing sends spans to an OTLP collector; off without an endpoint.
	Tracing tracing.Config `mapstructure:"tracing"`
}

func defaults() *Config {
	c := &Config{Logging: logging.Default, Tracing: tracing.Default}
	c.Server = httpapi.ServerConfig{Host: "127.0.0.1", Port: 8082, ReadTimeout: 10e9, WriteTimeout: 10e9, IdleTimeout: 60e9}
	c.Database = sqldb.Config{Addr: "127.0.0.1:33060", User: "pipelineapi", Database: "pipeline_db"}
	return c
}

// Validate names the first bad key.
func (c *Config) Validate() error {
	var ch config.Checks
	ch.Check(c.Server.Port > 0 && c.Server.Port < 65536, "server.port", "must be 1..65535, got %d", c.Server.Port)
	ch.Check(c.Database.Addr != "", "database.addr", "must be set")
	ch.Check(c.Database.Database != "", "database.database", "must be set")
	if err := c.Logging.Validate(); err != nil {
		return err
	}
	if err := c.Tracing.Validate(); err != nil {
		return err
	}
	return ch.Err()
}
