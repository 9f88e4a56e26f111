// Package config loads a component's configuration: built-in defaults, then a
// TOML file, then environment variables (the key path upper-cased with "_" for
// ".", e.g. SERVER_PORT for server.port). Unknown keys, values of the wrong type
// and values that fail validation are errors that name the key. It is the only
// package besides the mains that touches viper and the environment.
package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
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
		if err := v.BindEnv(k, EnvName(k)); err != nil {
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
// original generator's config did ("generation_interval = 5"), in TOML and
// in the environment alike (EVENTS_GENERATION_INTERVAL=86400); text with a
// unit ("1m30s") is left to the duration hook.
func secondsHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeOf(time.Duration(0)) {
		return data, nil
	}
	var secs float64
	switch v := data.(type) {
	case int:
		secs = float64(v)
	case int64:
		secs = float64(v)
	case float64:
		secs = v
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return data, nil // not a bare number: "5s", "1m", or an error for the next hook
		}
		secs = f
	default:
		return data, nil
	}
	if math.IsNaN(secs) || math.IsInf(secs, 0) || math.Abs(secs) > math.MaxInt64/float64(time.Second) {
		return nil, fmt.Errorf("duration %v is out of range", data)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// leafKeys lists the dotted mapstructure keys of every leaf field of t.
func leafKeys(t reflect.Type, prefix string) []string {
	var out []string
	walk(reflect.New(t).Elem(), prefix, func(key string, _ reflect.Value) { out = append(out, key) })
	return out
}

// walk calls fn with the dotted key and value of every leaf field of v.
func walk(v reflect.Value, prefix string, fn func(key string, v reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if opts == "squash" {
			walk(v.Field(i), prefix, fn) // its fields sit beside this struct's
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			walk(v.Field(i), key+".", fn)
			continue
		}
		fn(key, v.Field(i))
	}
}

// EnvName is the environment variable that sets key: the key path
// upper-cased with "_" for ".".
func EnvName(key string) string { return strings.ToUpper(strings.ReplaceAll(key, ".", "_")) }

// Key is one configuration key with its environment variable and value.
type Key struct {
	Name  string // dotted path, e.g. server.port
	Env   string // e.g. SERVER_PORT
	Value any
}

// Secret reports whether the key holds a secret, whose value is never
// printed.
func (k Key) Secret() bool {
	n := strings.ToLower(k.Name)
	return strings.Contains(n, "password") || strings.Contains(n, "secret") || strings.Contains(n, "token")
}

// Keys lists every key of cfg, a pointer to a config struct, in field order
// with its current value.
func Keys(cfg any) []Key {
	var out []Key
	walk(reflect.ValueOf(cfg).Elem(), "", func(key string, v reflect.Value) {
		out = append(out, Key{Name: key, Env: EnvName(key), Value: v.Interface()})
	})
	return out
}

// ambientEnv are environment variables every process may have that are no
// configuration of ours.
var ambientEnv = map[string]bool{"PATH": true, "HOME": true, "HOSTNAME": true, "PWD": true, "OLDPWD": true, "SHLVL": true,
	"TERM": true, "TZ": true, "LANG": true, "LANGUAGE": true, "USER": true, "LOGNAME": true, "SHELL": true, "_": true,
	"SSL_CERT_FILE": true, "SSL_CERT_DIR": true, "GOCOVERDIR": true, "GODEBUG": true, "GOMAXPROCS": true, "GOMEMLIMIT": true}

// UnknownEnv returns the names in environ (KEY=value entries) that are
// neither a key of cfg nor an ambient variable such as PATH or LC_ALL: a
// misspelt or misplaced setting that would otherwise be ignored.
func UnknownEnv(cfg any, environ []string) []string {
	known := map[string]bool{}
	for _, k := range Keys(cfg) {
		known[k.Env] = true
	}
	var out []string
	for _, e := range environ {
		name, _, _ := strings.Cut(e, "=")
		if !known[name] && !ambientEnv[name] && !strings.HasPrefix(name, "LC_") {
			out = append(out, name)
		}
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
