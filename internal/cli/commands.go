package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shopledger/shopledger/internal/config"
)

// version and commit are set at build time:
// -ldflags "-X github.com/shopledger/shopledger/internal/cli.version=v1.2.3 -X ...cli.commit=abc1234".
var version, commit string

// VersionString is "<version> (commit <commit>, <go version>)", from the
// build flags, else from the module's build information.
func VersionString() string {
	v, c := Build()
	goVersion := "go"
	if info, ok := debug.ReadBuildInfo(); ok {
		goVersion = info.GoVersion
	}
	return fmt.Sprintf("%s (commit %s, %s)", v, c, goVersion)
}

// Build returns the version and commit of this binary: the build flags',
// else the module's build information's, else "dev" and "unknown".
func Build() (string, string) {
	v, c := version, commit
	info, ok := debug.ReadBuildInfo()
	if ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && c == "" {
				c = s.Value
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	if c == "" {
		c = "unknown"
	}
	return v, c
}

func (a App[C]) printHelp(w io.Writer, cmd Command[C], fs *flag.FlagSet) {
	fmt.Fprintf(w, "%s: %s\n\n", a.Name, a.About)
	fmt.Fprintf(w, "Usage:\n  %s [command] [flags]\n\nCommands:\n", a.Name)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for i, c := range a.commands() {
		about := c.About
		if i == 0 {
			about += " (default)"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", c.Name, about)
	}
	tw.Flush()
	usage := a.Name + " " + cmd.Name + " [flags]"
	if cmd.Args != "" {
		usage += " " + cmd.Args
	}
	fmt.Fprintf(w, "\nFlags of %q (each command: %s COMMAND --help):\n", usage, a.Name)
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "h" {
			return
		}
		name, use := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "-1" && f.DefValue != "0s" {
			use += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(w, "%-28s %s\n", line, use)
	})
	if a.Defaults != nil {
		fmt.Fprintf(w, "\nConfiguration: built-in defaults, then --config FILE (TOML), then the environment.\n"+
			"Durations take a unit (500ms, 5m) or are bare seconds.\n")
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  KEY\tENVIRONMENT\tDEFAULT\n")
		for _, k := range config.Keys(a.Defaults()) {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", k.Name, k.Env, render(k))
		}
		tw.Flush()
	}
	codes := map[int]string{ExitOK: "done", ExitFailure: "the command failed (the error is printed)", ExitUsage: "bad command line or configuration"}
	for c, m := range a.ExitCodes {
		codes[c] = m
	}
	keys := make([]int, 0, len(codes))
	for c := range codes {
		keys = append(keys, c)
	}
	sort.Ints(keys)
	fmt.Fprintf(w, "\nExit codes:\n")
	for _, c := range keys {
		fmt.Fprintf(w, "  %d  %s\n", c, codes[c])
	}
}

// render shows a key's value as it would be written in TOML, masking
// secrets.
func render(k config.Key) string {
	if k.Secret() {
		if fmt.Sprint(k.Value) == "" {
			return `""`
		}
		return `"***"`
	}
	switch v := k.Value.(type) {
	case string:
		return fmt.Sprintf("%q", v)
	case time.Duration:
		return fmt.Sprintf("%q", v.String())
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = fmt.Sprintf("%q", s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	return fmt.Sprint(k.Value)
}

// environ is the process environment that `config --strict` checks.
var environ = os.Environ

// ErrUnknownEnv is returned by `config --strict` for environment variables
// that are no configuration key.
var ErrUnknownEnv = errors.New("environment variables that are no configuration key")

func (a App[C]) configCommand(fs *flag.FlagSet) Runner[C] {
	strict := fs.Bool("strict", false, "fail on environment variables that are no configuration key (PATH and such excepted)")
	return NoArgs(func(_ context.Context, cfg *C, _ []string) error {
		if *strict {
			if unknown := config.UnknownEnv(cfg, environ()); len(unknown) > 0 {
				sort.Strings(unknown)
				return Exit(ExitUsage, fmt.Errorf("%w of %s: %s", ErrUnknownEnv, a.Name, strings.Join(unknown, ", ")))
			}
		}
		for _, k := range config.Keys(cfg) {
			fmt.Printf("%s = %s  # %s\n", k.Name, render(k), k.Env)
		}
		return nil
	})
}

// ErrNotReady is returned by healthcheck when /ready does not answer 200.
var ErrNotReady = errors.New("not ready")

func (a App[C]) healthcheck(ctx context.Context, cfg *C, _ []string) error {
	srv := a.Server(cfg)
	if srv.Port <= 0 {
		return fmt.Errorf("%w: the HTTP server is disabled (server.port = %d)", ErrNotReady, srv.Port)
	}
	host := srv.Host
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, fmt.Sprint(srv.Port)) + "/ready"
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotReady, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s answered %d: %s", ErrNotReady, url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}
