package main

import (
	"time"

	"github.com/shopledger/shopledger/internal/config"
	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/tracing"
)

// Config is the generator's configuration (ingest.toml), with the keys of
// SPEC §2. Environment overrides: SERVER_PORT, PIPELINE_URL,
// PIPELINE_SHARDS_COUNT, and every other key the same way.
type Config struct {
	Shared string               `mapstructure:"shared_dir"`
	Server httpapi.ServerConfig `mapstructure:"server"`
	Events struct {
		MaxPayloadSize     int64         `mapstructure:"max_payload_size"`
		ValidationTimeout  time.Duration `mapstructure:"validation_timeout"`
		MaxBatchSize       int           `mapstructure:"max_batch_size"`
		GenerationInterval time.Duration `mapstructure:"generation_interval"`
		EventsPerBatch     int           `mapstructure:"events_per_batch"`
		// MaxFiles stops the generator after that many files; 0 never.
		MaxFiles int `mapstructure:"max_files"`
	} `mapstructure:"events"`
	Generator struct {
		Shops int    `mapstructure:"shops"`
		Goods int    `mapstructure:"goods"`
		Users int    `mapstructure:"users"`
		Seed  uint64 `mapstructure:"seed"`
	} `mapstructure:"generator"`
	Logging logging.Config `mapstructure:"logging"`
	// Tracing sends spans to an OTLP collector; off without an endpoint.
	Tracing  tracing.Config `mapstructure:"tracing"`
	Pipeline struct {
		URL         string        `mapstructure:"url"`
		ShardsCount int           `mapstructure:"shards_count"`
		Timeout     time.Duration `mapstructure:"timeout"`
		Retries     int           `mapstructure:"retries"`
		// Producer names this writer to the pipeline API (unique per
		// writer of one shared folder): a stem another producer registered
		// is refused instead of overwriting its file.
		Producer string `mapstructure:"producer"`
	} `mapstructure:"pipeline"`
}

func defaults() *Config {
	c := &Config{Logging: logging.Default, Tracing: tracing.Default}
	c.Server = httpapi.ServerConfig{Host: "127.0.0.1", Port: 8080, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	c.Events.MaxPayloadSize = 1 << 20
	c.Events.ValidationTimeout = 2 * time.Second
	c.Events.MaxBatchSize = 1000
	c.Events.GenerationInterval = time.Second
	c.Events.EventsPerBatch = 200
	c.Shared = "./.data/shared"
	c.Generator.Shops, c.Generator.Goods, c.Generator.Users = 20, 50, 200
	c.Pipeline.URL = "http://127.0.0.1:8082/api/v1/pipeline"
	c.Pipeline.ShardsCount = 2
	c.Pipeline.Timeout = 5 * time.Second
	c.Pipeline.Retries = 5
	c.Pipeline.Producer = "ingest"
	return c
}

// Validate names the bad key.
func (c *Config) Validate() error {
	var ch config.Checks
	ch.Check(c.Server.Port > 0 && c.Server.Port < 65536, "server.port", "must be 1..65535, got %d", c.Server.Port)
	ch.Check(c.Events.MaxPayloadSize > 0, "events.max_payload_size", "must be positive")
	ch.Check(c.Events.ValidationTimeout > 0, "events.validation_timeout", "must be positive")
	ch.Check(c.Events.MaxBatchSize >= 1 && c.Events.MaxBatchSize <= 99999, "events.max_batch_size", "must be 1..99999, got %d", c.Events.MaxBatchSize)
	ch.Check(c.Events.EventsPerBatch >= 1, "events.events_per_batch", "must be at least 1, got %d", c.Events.EventsPerBatch)
	iv := c.Events.GenerationInterval
	ch.Check(iv >= time.Second && iv%time.Second == 0, "events.generation_interval", "must be a whole number of seconds (file names have 1 s resolution), got %s", iv)
	ch.Check(c.Shared != "", "shared_dir", "must be set")
	ch.Check(c.Events.MaxFiles >= 0, "events.max_files", "must not be negative")
	ch.Check(c.Generator.Shops >= 1 && c.Generator.Goods >= 1 && c.Generator.Users >= 1, "generator", "shops, goods and users must be at least 1")
	ch.Check(c.Pipeline.URL != "", "pipeline.url", "must be set")
	ch.Check(c.Pipeline.Producer != "" && len(c.Pipeline.Producer) <= 128, "pipeline.producer", "must be 1..128 bytes, got %q", c.Pipeline.Producer)
	ch.Check(c.Pipeline.ShardsCount >= 1 && c.Pipeline.ShardsCount <= 1024, "pipeline.shards_count", "must be 1..1024, got %d", c.Pipeline.ShardsCount)
	if err := c.Logging.Validate(); err != nil {
		return err
	}
	if err := c.Tracing.Validate(); err != nil {
		return err
	}
	return ch.Err()
}
