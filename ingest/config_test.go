package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shopledger/shopledger/internal/config"
)

// The sample config in deploy/config loads without unknown keys, passes
// validation, and holds the built-in defaults, so it documents them.
func TestSampleConfig(t *testing.T) {
	cfg := defaults()
	if err := config.Load("../deploy/config/ingest.toml", cfg); err != nil {
		t.Fatal(err)
	}
	want := defaults()
	if err := want.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if got, w := fmt.Sprintf("%+v", *cfg), fmt.Sprintf("%+v", *want); got != w {
		t.Errorf("sample config = %s\nwant the defaults %s", got, w)
	}
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
