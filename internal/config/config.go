// Package config loads a component's configuration: built-in defaults, then a
// TOML file, then environment variables (the key path upper-cased with "_" for
// ".", e.g. SERVER_PORT for server.port). Unknown keys, values of the wrong type
// and values that fail validation are errors that name the key. It is the only
// package besides the mains that touches viper and the environment.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// Validator is implemented by configs that check their own values. Errors
// should name the key, e.g. `events.max_batch_size: must be at least 1`.
type Validator interface {
	Validate() error
}

// Load fills cfg, which must be a pointer to a struct already holding the
// defaults, from the TOML file at path (skipped when path is empty) and from
// the environment. A missing file named explicitly is an error.
func Load(path string, cfg any) error {
	v := viper.New()
	v.SetConfigType("toml")
	keys := leafKeys(reflect.TypeOf(cfg).Elem(), "")
	for _, k := range keys {
		if err := v.BindEnv(k, strings.ToUpper(strings.ReplaceAll(k, ".", "_"))); err != nil {
			return fmt.Errorf("config: bind %s: %w", k, err)
		}
	}
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		defer f.Close()
		if err := v.ReadConfig(f); err != nil {
			return fmt.Errorf("config %s: %w", path, err)
		}
		known := map[string]bool{}
		for _, k := range keys {
			known[k] = true
		}
		for _, k := range v.AllKeys() {
			if !known[k] && !isPrefix(k, keys) {
				return fmt.Errorf("config %s: unknown key %q", path, k)
			}
		}
	}
	hook := mapstructure.ComposeDecodeHookFunc(secondsHook, mapstructure.StringToTimeDurationHookFunc(), mapstructure.StringToSliceHookFunc(","))
	if err := v.Unmarshal(cfg, viper.DecodeHook(hook)); err != nil {
		return fmt.Errorf("config %s: %w", describe(path), err)
	}
	if val, ok := cfg.(Validator); ok {
		if err := val.Validate(); err != nil {
			return fmt.Errorf("config %s: %w", describe(path), err)
		}
	}
	return nil
}

func describe(path string) string {
	if path == "" {
		return "(defaults and environment)"
	}
	return path
}

func isPrefix(k string, keys []string) bool {
	for _, known := range keys {
		if strings.HasPrefix(k, known+".") {
			return true
		}
	}
	return false
}

// secondsHook lets a duration be written as a bare number of seconds, as the
// original generator's config did ("generation_interval = 5").
func secondsHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeOf(time.Duration(0)) {
		return data, nil
	}
	switch v := data.(type) {
	case int:
		return time.Duration(v) * time.Second, nil
	case int64:
		return time.Duration(v) * time.Second, nil
	case float64:
		return time.Duration(v * float64(time.Second)), nil
	}
	return data, nil
}

// leafKeys lists the dotted mapstructure keys of every leaf field of t.
func leafKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("mapstructure")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		ft := f.Type
		if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Duration(0)) {
			out = append(out, leafKeys(ft, key+".")...)
			continue
		}
		out = append(out, key)
	}
	return out
}

// Checks collects validation failures, each naming its key.
type Checks struct{ errs []error }

// Check records msg against key when ok is false.
func (c *Checks) Check(ok bool, key, format string, args ...any) {
	if !ok {
		c.errs = append(c.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
}

// Err returns every recorded failure joined, or nil.
func (c *Checks) Err() error { return errors.Join(c.errs...) }
