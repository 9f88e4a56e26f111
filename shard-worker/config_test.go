package main

import (
	"testing"

	"github.com/shopledger/shopledger/internal/config/configtest"
)

// The sample config in deploy/config holds exactly the built-in defaults.
func TestSampleConfig(t *testing.T) {
	cfg, want := defaults(), defaults()
	want.Shard = 0 // the sample names shard 0; the default is "unset"
	configtest.SampleMatchesDefaults(t, "../deploy/config/shard-worker.toml", cfg, want)
}
