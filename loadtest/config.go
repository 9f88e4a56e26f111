package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/shopledger/shopledger/internal/config"
	"github.com/shopledger/shopledger/internal/eventgen"
	"github.com/shopledger/shopledger/internal/shard"
	"github.com/shopledger/shopledger/internal/spool"
	"github.com/shopledger/shopledger/loadtest/internal/load"
)

// Config is the load test's configuration. The defaults are the SPEC §6
// addresses of `make run` (and of the compose stack's published ports);
// every address, folder and credential can be set in a TOML file or the
// environment (RATE, DURATION, READ_RPS, REPORT, PIPELINE_URL, SHARED_DIR,
// SHARDS_ADDRS, CONTROL_ADDR, …), so that tests point it at a stack on
// free ports.
type Config struct {
	// Rate is the events offered per second, Duration how long.
	Rate     int           `mapstructure:"rate"`
	Duration time.Duration `mapstructure:"duration"`
	// ReadRPS is the REST reads offered per second, half to balance and
	// half to cache.
	ReadRPS int `mapstructure:"read_rps"`
	// Report is the folder the report goes to; empty means
	// ./load-test-report/<UTC start time>.
	Report string `mapstructure:"report"`
	// FileInterval is how often a file is written (of Rate × FileInterval
	// events, at most 99,000).
	FileInterval time.Duration `mapstructure:"file_interval"`
	// BadLines is the fraction of generated lines replaced by bad ones.
	BadLines float64 `mapstructure:"bad_lines"`
	// Seed seeds the events and the reads; 0 takes the time.
	Seed  uint64 `mapstructure:"seed"`
	World struct {
		Shops int `mapstructure:"shops"`
		Goods int `mapstructure:"goods"`
		Users int `mapstructure:"users"`
	} `mapstructure:"world"`

	// SharedDir is the stack's shared folder; files go into its events/.
	SharedDir string `mapstructure:"shared_dir"`
	Pipeline  struct {
		URL string `mapstructure:"url"`
	} `mapstructure:"pipeline"`
	Balance struct {
		URL string `mapstructure:"url"`
	} `mapstructure:"balance"`
	Cache struct {
		URL string `mapstructure:"url"`
	} `mapstructure:"cache"`
	// Producers are the cdc-producers' base URLs (their /metrics); empty
	// means http://127.0.0.1:(8100 + i) for every shard.
	Producers []string `mapstructure:"producers"`
	// Shards are the shard databases (count and addresses as the stack
	// has them), for the audit and the reconciliations.
	Shards shard.Conns `mapstructure:"shards"`
	// Control is the control database server (pipeline_db, splitter_db,
	// balance_db, cache_db), for the audit and the reconciliations.
	Control struct {
		Addr     string `mapstructure:"addr"`
		User     string `mapstructure:"user"`
		Password string `mapstructure:"password"`
	} `mapstructure:"control"`

	// DrainTimeout bounds the wait for the pipeline to finish after the
	// load; ReconcileWait is each reconciliation's --wait.
	DrainTimeout  time.Duration `mapstructure:"drain_timeout"`
	ReconcileWait time.Duration `mapstructure:"reconcile_wait"`
	// BinDir holds audit, balance and cache; empty means this binary's
	// folder.
	BinDir string `mapstructure:"bin_dir"`
	// Checks replace the built-in checks by command lines for sh -c (for
	// a compose stack: docker compose run --rm audit, docker compose exec
	// balance balance reconcile, …); empty keeps the built-in one.
	Checks struct {
		Audit   string `mapstructure:"audit"`
		Balance string `mapstructure:"balance"`
		Cache   string `mapstructure:"cache"`
	} `mapstructure:"checks"`
}

func defaults() *Config {
	c := &Config{Rate: 500, Duration: 60 * time.Second, ReadRPS: 50, FileInterval: time.Second, BadLines: 0.005,
		SharedDir: "./.data/shared", Shards: shard.DefaultConns(), DrainTimeout: 5 * time.Minute, ReconcileWait: time.Minute}
	c.World.Shops, c.World.Goods, c.World.Users = 100, 40, 5000
	c.Pipeline.URL = "http://127.0.0.1:8082/api/v1/pipeline"
	c.Balance.URL, c.Cache.URL = "http://127.0.0.1:8083", "http://127.0.0.1:8084"
	c.Control.Addr, c.Control.User = "127.0.0.1:33060", "reader"
	return c
}

// Validate names the bad key.
func (c *Config) Validate() error {
	var ch config.Checks
	ch.Check(c.Rate >= 1, "rate", "must be at least 1 event a second, got %d", c.Rate)
	ch.Check(c.Duration >= time.Second, "duration", "must be at least 1s, got %s", c.Duration)
	ch.Check(c.ReadRPS >= 0 && c.ReadRPS <= 100_000, "read_rps", "must be 0..100000, got %d", c.ReadRPS)
	ch.Check(c.FileInterval >= 10*time.Millisecond, "file_interval", "must be at least 10ms, got %s", c.FileInterval)
	perFile := float64(c.Rate) * c.FileInterval.Seconds()
	ch.Check(perFile <= load.MaxEventsPerFile, "file_interval", "rate × file_interval must be at most %d events a file, got %.0f: shorten file_interval",
		load.MaxEventsPerFile, perFile)
	ch.Check(c.BadLines >= 0 && c.BadLines < 1, "bad_lines", "must be a fraction in [0, 1), got %g", c.BadLines)
	ch.Check(c.World.Shops >= 1 && c.World.Goods >= 1 && c.World.Users >= 1, "world", "shops, goods and users must be at least 1")
	ch.Check(c.SharedDir != "", "shared_dir", "must be set")
	ch.Check(c.Pipeline.URL != "", "pipeline.url", "must be set")
	ch.Check(c.Balance.URL != "", "balance.url", "must be set")
	ch.Check(c.Cache.URL != "", "cache.url", "must be set")
	ch.Check(len(c.Producers) == 0 || len(c.Producers) == c.Shards.Count, "producers", "must list one URL per shard (%d), got %d", c.Shards.Count, len(c.Producers))
	c.Shards.Check(&ch, "shards")
	ch.Check(c.Control.Addr != "", "control.addr", "must be set")
	ch.Check(c.DrainTimeout > 0, "drain_timeout", "must be positive, got %s", c.DrainTimeout)
	ch.Check(c.ReconcileWait >= 0, "reconcile_wait", "must not be negative, got %s", c.ReconcileWait)
	return ch.Err()
}

// load is the run's configuration.
func (c *Config) load(binDir string) *load.Config {
	lc := &load.Config{Rate: c.Rate, Duration: c.Duration, ReadRPS: c.ReadRPS, FileInterval: c.FileInterval, BadLines: c.BadLines,
		World: eventgen.World{Shops: c.World.Shops, Goods: c.World.Goods, Users: c.World.Users}, Seed: c.Seed, Shards: c.Shards.Count,
		Shared: spool.Dir(c.SharedDir), PipelineURL: strings.TrimSuffix(c.Pipeline.URL, "/"),
		BalanceURL: strings.TrimSuffix(c.Balance.URL, "/"), CacheURL: strings.TrimSuffix(c.Cache.URL, "/"),
		Producers: c.Producers, DrainTimeout: c.DrainTimeout}
	if lc.Seed == 0 {
		lc.Seed = uint64(time.Now().UnixNano())
	}
	if len(lc.Producers) == 0 {
		for i := range c.Shards.Count {
			lc.Producers = append(lc.Producers, fmt.Sprintf("http://127.0.0.1:%d", 8100+i))
		}
	}
	for i, p := range lc.Producers {
		lc.Producers[i] = strings.TrimSuffix(p, "/")
	}
	// The checks run the stack's own binaries with its settings.
	var addrs []string
	for i := range c.Shards.Count {
		addrs = append(addrs, c.Shards.Addr(i))
	}
	shards := []string{fmt.Sprintf("SHARDS_COUNT=%d", c.Shards.Count), "SHARDS_ADDRS=" + strings.Join(addrs, ","),
		"SHARDS_DATABASE=" + c.Shards.Database, "SHARDS_USER=" + c.Shards.User, "SHARDS_PASSWORD=" + c.Shards.Password}
	wait := "--wait=" + c.ReconcileWait.String()
	lc.Checks = []load.Check{
		{Name: "audit", Argv: []string{filepath.Join(binDir, "audit")}, Shell: c.Checks.Audit,
			Env: append([]string{"SHARED_DIR=" + c.SharedDir, "CONTROL_ADDR=" + c.Control.Addr, "CONTROL_USER=" + c.Control.User,
				"CONTROL_PASSWORD=" + c.Control.Password}, shards...)},
		{Name: "balance reconcile", Argv: []string{filepath.Join(binDir, "balance"), "reconcile", wait}, Shell: c.Checks.Balance,
			Env: append([]string{"DATABASE_ADDR=" + c.Control.Addr}, shards...)},
		{Name: "cache reconcile", Argv: []string{filepath.Join(binDir, "cache"), "reconcile", wait}, Shell: c.Checks.Cache,
			Env: append([]string{"DATABASE_ADDR=" + c.Control.Addr}, shards...)},
	}
	return lc
}
