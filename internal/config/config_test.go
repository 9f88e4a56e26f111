package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testCfg struct {
	Server struct {
		Port    int           `mapstructure:"port"`
		Timeout time.Duration `mapstructure:"timeout"`
	} `mapstructure:"server"`
	Pipeline struct {
		URL string `mapstructure:"url"`
	} `mapstructure:"pipeline"`
}

func (c *testCfg) Validate() error {
	var ch Checks
	ch.Check(c.Server.Port > 0 && c.Server.Port < 65536, "server.port", "must be 1..65535, got %d", c.Server.Port)
	return ch.Err()
}

func write(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	cfg := &testCfg{}
	cfg.Server.Port = 1
	cfg.Pipeline.URL = "http://default"
	p := write(t, "[server]\nport = 8080\ntimeout = 5\n")
	t.Setenv("PIPELINE_URL", "http://env")
	if err := Load(p, cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Port != 8080 || cfg.Server.Timeout != 5*time.Second || cfg.Pipeline.URL != "http://env" {
		t.Errorf("Load = %+v, want port 8080, timeout 5s, url from env", cfg)
	}
}

func TestLoadErrorsNameTheKey(t *testing.T) {
	cases := []struct{ file, env, want string }{
		{"[server]\nprot = 1\n", "", "server.prot"},
		{"[server]\nport = \"x\"\n", "", "port"},
		{"[server]\nport = 70000\n", "", "server.port: must be 1..65535"},
		{"", "0", "server.port"},
	}
	for _, c := range cases {
		cfg := &testCfg{}
		cfg.Server.Port = 1
		if c.env != "" {
			t.Setenv("SERVER_PORT", c.env)
		}
		err := Load(write(t, c.file), cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Load(%q) error = %v, want it to name %q", c.file, err, c.want)
		}
	}
}

func TestLoadBareSecondsEverywhere(t *testing.T) {
	cases := []struct{ file, env string }{
		{"[server]\nport = 1\ntimeout = 86400\n", ""},
		{"[server]\nport = 1\ntimeout = \"86400\"\n", ""},
		{"[server]\nport = 1\ntimeout = \"24h\"\n", ""},
		{"[server]\nport = 1\n", "86400"},
		{"[server]\nport = 1\n", "86400.0"},
		{"[server]\nport = 1\n", "24h"},
	}
	for _, c := range cases {
		cfg := &testCfg{}
		if c.env != "" {
			t.Setenv("SERVER_TIMEOUT", c.env)
		}
		if err := Load(write(t, c.file), cfg); err != nil {
			t.Errorf("Load(%q, SERVER_TIMEOUT=%q): %v", c.file, c.env, err)
			continue
		}
		if cfg.Server.Timeout != 24*time.Hour {
			t.Errorf("Load(%q, SERVER_TIMEOUT=%q) timeout = %s, want 24h", c.file, c.env, cfg.Server.Timeout)
		}
	}
	for _, bad := range []string{"NaN", "1e300", "soon"} {
		t.Setenv("SERVER_TIMEOUT", bad)
		if err := Load(write(t, "[server]\nport = 1\n"), &testCfg{}); err == nil || !strings.Contains(err.Error(), "timeout") {
			t.Errorf("Load(SERVER_TIMEOUT=%q) error = %v, want one naming the key", bad, err)
		}
	}
}
