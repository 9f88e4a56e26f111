// Package cli is the command line every shopledger binary shares: a
// description, its commands, its configuration keys with their environment
// names and its exit codes under --help; the version under --version; the
// configuration loaded from built-in defaults, --config FILE and the
// environment; and, for every service, two commands that deployments rely
// on: `config` (print the effective configuration; --strict refuses
// environment variables that are no key, so a misspelt setting is not
// silently ignored) and `healthcheck` (ask the service's own /ready, for
// container healthchecks in images without a shell).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/shopledger/shopledger/internal/config"
	"github.com/shopledger/shopledger/internal/httpapi"
)

// Exit codes every binary shares. A command may add its own (documented in
// App.ExitCodes), such as 1 for "differences found".
const (
	ExitOK      = 0 // done
	ExitFailure = 1 // the command failed (its error is printed)
	ExitUsage   = 2 // bad command line or configuration
)

// Runner runs a command with the loaded configuration and the command's
// remaining arguments. An *ExitError sets the exit code; any other error
// exits with ExitFailure.
type Runner[C any] func(ctx context.Context, cfg *C, args []string) error

// Command is one subcommand.
type Command[C any] struct {
	Name  string
	Args  string // what follows the flags in the usage line, e.g. "FILE..."
	About string // one line
	// Setup registers the command's flags on fs and returns what runs it.
	Setup func(fs *flag.FlagSet) Runner[C]
}

// Run is a Command.Setup for a command without flags of its own.
func Run[C any](r Runner[C]) func(*flag.FlagSet) Runner[C] {
	return func(*flag.FlagSet) Runner[C] { return r }
}

// App is a binary's command line.
type App[C any] struct {
	Name  string
	About string // what the binary is for, a paragraph
	// Defaults returns a new configuration holding the built-in defaults;
	// nil for a binary without configuration.
	Defaults func() *C
	// Commands are the binary's own commands; the first is the default.
	Commands []Command[C]
	// Shard adds --shard N, which sets the configuration key `shard`.
	Shard bool
	// Server returns where the service answers /ready; nil for a binary
	// that serves nothing (no healthcheck command then).
	Server func(*C) httpapi.ServerConfig
	// ExitCodes documents codes beyond ExitOK, ExitFailure and ExitUsage.
	ExitCodes map[int]string
}

// ExitError ends a command with Code, printing Err unless it is nil.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Exit returns an error that ends the command with code, printing err
// (nothing if nil).
func Exit(code int, err error) error { return &ExitError{Code: code, Err: err} }

// Main runs the command line args (without the program name) and returns
// the exit code.
func (a App[C]) Main(args []string) int {
	return a.main(args, os.Stdout, os.Stderr)
}

func (a App[C]) commands() []Command[C] {
	cmds := append([]Command[C](nil), a.Commands...)
	if a.Defaults != nil {
		cmds = append(cmds, Command[C]{Name: "config", About: "print the effective configuration (secrets masked); --strict fails on environment variables that are no configuration key",
			Setup: a.configCommand})
	}
	if a.Server != nil {
		cmds = append(cmds, Command[C]{Name: "healthcheck", About: "exit 0 if this service's /ready answers 200, 1 otherwise (container healthchecks)",
			Setup: Run(a.healthcheck)})
	}
	return cmds
}

func (a App[C]) main(args []string, stdout, stderr io.Writer) int {
	cmds := a.commands()
	cmd := cmds[0]
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		found := false
		for _, c := range cmds {
			if c.Name == args[0] {
				cmd, found = c, true
				break
			}
		}
		if !found {
			fmt.Fprintf(stderr, "%s: unknown command %q (see %s --help)\n", a.Name, args[0], a.Name)
			return ExitUsage
		}
		args = args[1:]
	}
	fs := flag.NewFlagSet(a.Name+" "+cmd.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	help := fs.Bool("help", false, "print this help and exit")
	fs.BoolVar(help, "h", false, "print this help and exit")
	version := fs.Bool("version", false, "print the version and commit and exit")
	var path *string
	if a.Defaults != nil {
		path = fs.String("config", "", "TOML config `FILE` (default: built-in defaults and the environment)")
	}
	shard := -1
	if a.Shard {
		fs.IntVar(&shard, "shard", -1, "shard `N` this process serves (sets the config key shard)")
	}
	run := cmd.Setup(fs)
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "%s %s: %v (see %s --help)\n", a.Name, cmd.Name, err, a.Name)
		return ExitUsage
	}
	switch {
	case *help:
		a.printHelp(stdout, cmd, fs)
		return ExitOK
	case *version:
		fmt.Fprintf(stdout, "%s %s\n", a.Name, VersionString())
		return ExitOK
	}
	cfg := new(C)
	if a.Defaults != nil {
		cfg = a.Defaults()
		if shard >= 0 {
			os.Setenv("SHARD", fmt.Sprint(shard))
		}
		if err := config.Load(*path, cfg); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", a.Name, err)
			return ExitUsage
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, cfg, fs.Args())
	var ee *ExitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		if ee.Err != nil {
			fmt.Fprintf(stderr, "%s %s: %v\n", a.Name, cmd.Name, ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintf(stderr, "%s %s: %v\n", a.Name, cmd.Name, err)
	return ExitFailure
}

// NoArgs wraps r to refuse positional arguments with ExitUsage.
func NoArgs[C any](r Runner[C]) Runner[C] {
	return func(ctx context.Context, cfg *C, args []string) error {
		if len(args) > 0 {
			return Exit(ExitUsage, fmt.Errorf("unexpected argument %q", args[0]))
		}
		return r(ctx, cfg, args)
	}
}
