package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/shopledger/shopledger/internal/httpapi"
)

type testConfig struct {
	Shard  int                  `mapstructure:"shard"`
	Server httpapi.ServerConfig `mapstructure:"server"`
	DB     struct {
		Password string `mapstructure:"password"`
	} `mapstructure:"database"`
}

func testApp(ran *[]string) App[testConfig] {
	return App[testConfig]{
		Name:     "demo",
		About:    "a demo binary.",
		Defaults: func() *testConfig { return &testConfig{Shard: -1, Server: httpapi.ServerConfig{Port: 1}} },
		Shard:    true,
		Commands: []Command[testConfig]{
			{Name: "run", About: "run it", Setup: Run(NoArgs(func(_ context.Context, c *testConfig, _ []string) error {
				*ran = append(*ran, fmt.Sprintf("run shard=%d", c.Shard))
				return nil
			}))},
			{Name: "check", About: "check it", Setup: func(fs *flag.FlagSet) Runner[testConfig] {
				code := fs.Int("code", 0, "exit code")
				return func(_ context.Context, _ *testConfig, args []string) error {
					*ran = append(*ran, "check "+strings.Join(args, ","))
					if *code != 0 {
						return Exit(*code, errors.New("told to"))
					}
					return nil
				}
			}},
		},
		Server:    func(c *testConfig) httpapi.ServerConfig { return c.Server },
		ExitCodes: map[int]string{5: "five"},
	}
}

func TestMain(t *testing.T) {
	cases := []struct {
		args     []string
		code     int
		ran      string
		out, err string
	}{
		{args: nil, code: 0, ran: "run shard=-1"},
		{args: []string{"--shard", "3"}, code: 0, ran: "run shard=3"},
		{args: []string{"run", "extra"}, code: ExitUsage, err: `unexpected argument "extra"`},
		{args: []string{"check", "--code", "5", "a", "b"}, code: 5, ran: "check a,b", err: "told to"},
		{args: []string{"bogus"}, code: ExitUsage, err: `unknown command "bogus"`},
		{args: []string{"--nope"}, code: ExitUsage, err: "flag provided but not defined"},
		{args: []string{"--help"}, code: 0, out: "SERVER_PORT"},
		{args: []string{"check", "-h"}, code: 0, out: "--code"},
		{args: []string{"--version"}, code: 0, out: "demo "},
		{args: []string{"--config", "/does/not/exist"}, code: ExitUsage, err: "no such file"},
	}
	for _, c := range cases {
		var ran []string
		var out, errb bytes.Buffer
		t.Setenv("SHARD", "")
		code := testApp(&ran).main(c.args, &out, &errb)
		if code != c.code || strings.Join(ran, ";") != c.ran || !strings.Contains(out.String(), c.out) || !strings.Contains(errb.String(), c.err) {
			t.Errorf("main(%q) = %d, ran %q, stdout %q, stderr %q; want %d, ran %q, stdout with %q, stderr with %q",
				c.args, code, ran, out.String(), errb.String(), c.code, c.ran, c.out, c.err)
		}
	}
}

func TestHelpListsEverything(t *testing.T) {
	var out bytes.Buffer
	testApp(new([]string)).main([]string{"--help"}, &out, &out)
	for _, want := range []string{"a demo binary.", "run ", "(default)", "check", "config", "healthcheck",
		"server.port", "SERVER_PORT", "DATABASE_PASSWORD", "--shard", "Exit codes:", "5  five", "2  bad command line"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}
}

func TestConfigStrict(t *testing.T) {
	defer func(e func() []string) { environ = e }(environ)
	cases := []struct {
		env  []string
		code int
		err  string
	}{
		{[]string{"SERVER_PORT=7", "PATH=/bin", "LC_ALL=C", "HOSTNAME=x"}, 0, ""},
		{[]string{"SERVER_PORT=7", "SERVR_HOST=0.0.0.0", "KAFKA_BROKERS=k:9092"}, ExitUsage, "KAFKA_BROKERS, SERVR_HOST"},
	}
	for _, c := range cases {
		environ = func() []string { return c.env }
		var errb bytes.Buffer
		if code := testApp(new([]string)).main([]string{"config", "--strict"}, &bytes.Buffer{}, &errb); code != c.code || !strings.Contains(errb.String(), c.err) {
			t.Errorf("config --strict with %q = %d (%s), want %d naming %q", c.env, code, errb.String(), c.code, c.err)
		}
	}
}

func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" {
			t.Errorf("healthcheck asked %s, want /ready", r.URL.Path)
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	for _, c := range []struct {
		host   string
		status int
		code   int
	}{{"0.0.0.0", http.StatusOK, 0}, {"127.0.0.1", http.StatusServiceUnavailable, ExitFailure}} {
		status = c.status
		t.Setenv("SERVER_PORT", strconv.Itoa(port))
		t.Setenv("SERVER_HOST", c.host)
		var errb bytes.Buffer
		if code := testApp(new([]string)).main([]string{"healthcheck"}, &bytes.Buffer{}, &errb); code != c.code {
			t.Errorf("healthcheck with /ready %d = %d (%s), want %d", c.status, code, errb.String(), c.code)
		}
	}
	srv.Close()
	if code := testApp(new([]string)).main([]string{"healthcheck"}, &bytes.Buffer{}, &bytes.Buffer{}); code != ExitFailure {
		t.Errorf("healthcheck with nothing listening = %d, want %d", code, ExitFailure)
	}
}
