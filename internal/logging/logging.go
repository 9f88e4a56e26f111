// Package logging builds the structured logger of a component from the
// [logging] config keys every component shares.
package logging

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Config is the [logging] section.
type Config struct {
	Level  string `mapstructure:"level"`  // debug, info, warn or error
	Format string `mapstructure:"format"` // text or json
}

// Default is info-level text.
var Default = Config{Level: "info", Format: "text"}

// Validate names the bad key.
func (c Config) Validate() error {
	if _, err := parseLevel(c.Level); err != nil {
		return fmt.Errorf("logging.level: %w", err)
	}
	if c.Format != "text" && c.Format != "json" {
		return fmt.Errorf("logging.format: must be text or json, got %q", c.Format)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(strings.ToUpper(s)))
	if err != nil {
		return 0, fmt.Errorf("must be debug, info, warn or error, got %q", s)
	}
	return l, nil
}

// New returns a logger writing to stderr with a "component" attribute.
func New(c Config, component string) *slog.Logger {
	lvl, _ := parseLevel(c.Level)
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if c.Format == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	return slog.New(h).With("component", component)
}
