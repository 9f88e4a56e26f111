package main

import (
	"fmt"
	"testing"

	"github.com/shopledger/shopledger/internal/config"
)

// The sample config in deploy/config loads without unknown keys, passes
// validation, and holds the built-in defaults, so it documents them.
func TestSampleConfig(t *testing.T) {
	cfg := defaults()
	if err := config.Load("../deploy/config/cdc-producer.toml", cfg); err != nil {
		t.Fatal(err)
	}
	want := defaults()
	want.Shard = 0 // the sample names shard 0; the default is "unset"
	if err := want.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if got, w := fmt.Sprintf("%+v", *cfg), fmt.Sprintf("%+v", *want); got != w {
		t.Errorf("sample config = %s\nwant the defaults %s", got, w)
	}
	keys := cfg.tables()
	if !keys["events"].Ordering || keys["good"].Columns[0] != "id" || keys["purchase_history"].Columns[0] != "order_id" {
		t.Errorf("table keys = %+v", keys)
	}
}
