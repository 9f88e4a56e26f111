// Package configtest checks a component's sample config file against its
// built-in defaults, so that the file documents them.
package configtest

import (
	"fmt"
	"testing"

	"github.com/shopledger/shopledger/internal/config"
)

// SampleMatchesDefaults loads the TOML file at path into got, which holds
// the defaults, and fails t unless loading succeeds (no unknown keys,
// valid values) and the result equals want, the defaults after validation.
func SampleMatchesDefaults(t *testing.T, path string, got, want config.Validator) {
	t.Helper()
	if err := config.Load(path, got); err != nil {
		t.Fatal(err)
	}
	if err := want.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if g, w := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want); g != w {
		t.Errorf("%s = %s\nwant the defaults %s", path, g, w)
	}
}
