package main

import (
	"strings"
	"testing"

	"github.com/shopledger/shopledger/internal/config/configtest"
)

// The sample config in deploy/config holds exactly the built-in defaults.
func TestSampleConfig(t *testing.T) {
	cfg, want := defaults(), defaults()
	want.Shard = 0 // the sample names shard 0; the default is "unset"
	configtest.SampleMatchesDefaults(t, "../deploy/config/cdc-producer.toml", cfg, want)
	keys := cfg.tables()
	if !keys["events"].Ordering || len(keys["good"].Columns) != 0 || keys["purchase_history"].Columns[0] != "order_id" {
		t.Errorf("table keys = %+v", keys)
	}
}

// The outbox's route defaults to <prefix>.outbox.<aggregatetype>; a route
// Kafka cannot take, and an outbox also captured as rows, are refused.
func TestOutboxConfig(t *testing.T) {
	cfg := defaults()
	cfg.Shard, cfg.Kafka.TopicPrefix = 0, "acme"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := cfg.outbox().TopicOf("order"); got != "acme.outbox.order" {
		t.Errorf("outbox topic of order = %s, want acme.outbox.order", got)
	}
	for name, bad := range map[string]func(*Config){
		"a route with a space":     func(c *Config) { c.Capture.Outbox.Topic = "shop outbox.${routedByValue}" },
		"an aggregate type with /": func(c *Config) { c.Capture.Outbox.AggregateTypes = []string{"a/b"} },
		"the outbox as rows too":   func(c *Config) { c.Capture.Tables = append(c.Capture.Tables, "outbox") },
	} {
		c := defaults()
		c.Shard = 0
		bad(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "capture.outbox") {
			t.Errorf("%s: Validate = %v, want an error naming capture.outbox", name, err)
		}
	}
}
