package main

import (
	"testing"

	"github.com/shopledger/shopledger/internal/config/configtest"
)

// The sample config in deploy/config holds exactly the built-in defaults.
func TestSampleConfig(t *testing.T) {
	cfg, want := defaults(), defaults()
	configtest.SampleMatchesDefaults(t, "../deploy/config/shard-splitter.toml", cfg, want)
}
