package main

import (
	"testing"

	"github.com/shopledger/shopledger/internal/config/configtest"
)

// The sample config in deploy/config holds exactly the built-in defaults.
func TestSampleConfig(t *testing.T) {
	configtest.SampleMatchesDefaults(t, "../deploy/config/loadtest.toml", defaults(), defaults())
}
