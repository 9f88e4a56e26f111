// Command loadtest (make load-test) drives a running stack through its
// public entry points at RATE events/s for DURATION with READ_RPS REST
// reads/s, measures it, waits for the pipeline to drain, runs the audit and
// both reconciliations, and writes report.md, series.csv and PNG plots
// into REPORT; it exits 1 when a check fails (see README, "Load test").
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/term"

	"github.com/shopledger/shopledger/internal/cli"
	"github.com/shopledger/shopledger/loadtest/internal/load"
	"github.com/shopledger/shopledger/loadtest/internal/report"
)

// Exit codes beyond the shared ones.
const (
	exitFailed = 1 // a check failed
	exitNoRun  = 3 // the run could not be made or reported
)

func main() {
	os.Exit(cli.App[Config]{
		Name: "loadtest",
		About: "drives a running shopledger stack (SPEC §6 addresses by default) at RATE events/s for DURATION, written as " +
			"a producer writes them, with READ_RPS REST reads/s on balance and cache; measures end-to-end latency, throughput per " +
			"stage, CDC and consumer lag and REST latency; waits for the pipeline to drain, runs the audit and both " +
			"reconciliations, and writes report.md, series.csv and PNG plots into REPORT.",
		Defaults: defaults,
		Commands: []cli.Command[Config]{{Name: "run", About: "run the load test and write its report", Setup: cli.Run(cli.NoArgs(run))}},
		ExitCodes: map[int]string{exitFailed: "the audit or a reconciliation failed after the load (the report says which, at its top)",
			exitNoRun: "the load test could not run (the stack does not answer, say) or write its report"},
	}.Main(os.Args[1:]))
}

func run(ctx context.Context, cfg *Config, _ []string) error {
	bin := cfg.BinDir
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return cli.Exit(exitNoRun, err)
		}
		bin = filepath.Dir(exe)
	}
	lc := cfg.load(bin)
	lc.Progress, lc.Terminal = os.Stderr, term.IsTerminal(int(os.Stderr.Fd()))
	res, err := load.Run(ctx, lc)
	if err != nil {
		return cli.Exit(exitNoRun, err)
	}
	dir := cfg.Report
	if dir == "" {
		dir = filepath.Join("load-test-report", res.Start.UTC().Format("20060102T150405Z"))
	}
	if err := report.Write(dir, res, report.ThisMachine(), cli.VersionString()); err != nil {
		return cli.Exit(exitNoRun, fmt.Errorf("write the report into %s: %w", dir, err))
	}
	report.Summary(os.Stdout, res, dir)
	if !res.OK() {
		return cli.Exit(exitFailed, errors.New(report.Verdict(res)))
	}
	return nil
}
