package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Check is a command run after the drain whose exit status says whether
// the stack is right: the audit, balance reconcile, cache reconcile.
type Check struct {
	Name string
	// Argv is the program and its arguments; Shell, when set instead, is a
	// command line for sh -c (docker compose exec …, say).
	Argv  []string
	Shell string
	Env   []string // added to the environment
}

// CheckResult is what a check said.
type CheckResult struct {
	Name    string
	Command string
	Exit    int // -1: did not run
	Err     string
	Output  string // its last lines
	Took    time.Duration
}

// OK reports whether the check passed.
func (c CheckResult) OK() bool { return c.Exit == 0 }

// Summary is one line: the check and what it said last.
func (c CheckResult) Summary() string {
	switch {
	case c.Exit < 0:
		return fmt.Sprintf("%s did not run: %s", c.Name, c.Err)
	case c.Exit == 0:
		return fmt.Sprintf("%s passed: %s", c.Name, oneLine(c.Output))
	}
	return fmt.Sprintf("%s failed (exit %d): %s", c.Name, c.Exit, oneLine(c.Output))
}

// outputLines is how many last lines of a check's output are kept.
const outputLines = 40

func (c Check) run(ctx context.Context) CheckResult {
	var cmd *exec.Cmd
	res := CheckResult{Name: c.Name, Exit: -1}
	switch {
	case c.Shell != "":
		cmd, res.Command = exec.CommandContext(ctx, "sh", "-c", c.Shell), c.Shell
	case len(c.Argv) > 0:
		cmd, res.Command = exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...), strings.Join(c.Argv, " ")
	default:
		res.Err = "no command"
		return res
	}
	cmd.Env = append(os.Environ(), c.Env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	res.Took = time.Since(start)
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) > outputLines {
		lines = append([]string{fmt.Sprintf("… (%d lines before)", len(lines)-outputLines)}, lines[len(lines)-outputLines:]...)
	}
	res.Output = strings.Join(lines, "\n")
	var ee *exec.ExitError
	switch {
	case err == nil:
		res.Exit = 0
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		res.Exit = ee.ExitCode()
	default:
		res.Err = err.Error()
	}
	return res
}
