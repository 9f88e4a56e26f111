package main

import (
	"strings"
	"testing"

	"github.com/shopledger/shopledger/internal/config"
	"github.com/shopledger/shopledger/internal/config/configtest"
)

// The sample config in deploy/config holds exactly the built-in defaults.
func TestSampleConfig(t *testing.T) {
	cfg, want := defaults(), defaults()
	configtest.SampleMatchesDefaults(t, "../deploy/config/ingest.toml", cfg, want)
}

// SPEC §2 names these overrides; existing deployments set them.
func TestEnvOverrides(t *testing.T) {
	t.Setenv("SERVER_PORT", "9099")
	t.Setenv("PIPELINE_URL", "http://pipeline:8082/api/v1/pipeline")
	t.Setenv("PIPELINE_SHARDS_COUNT", "3")
	cfg := defaults()
	if err := config.Load("../deploy/config/ingest.toml", cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Port != 9099 || cfg.Pipeline.URL != "http://pipeline:8082/api/v1/pipeline" || cfg.Pipeline.ShardsCount != 3 {
		t.Errorf("after env overrides: port %d, url %s, shards %d", cfg.Server.Port, cfg.Pipeline.URL, cfg.Pipeline.ShardsCount)
	}
	t.Setenv("EVENTS_GENERATION_INTERVAL", "1500ms")
	if err := config.Load("", defaults()); err == nil || !strings.Contains(err.Error(), "events.generation_interval") {
		t.Errorf("a sub-second interval: error = %v, want one naming events.generation_interval", err)
	}
}
