// Package schemathesis installs and runs the pinned Schemathesis (PyPI), the
// property-based API tester the API tests run against every service's
// OpenAPI description: it is installed with pip into a virtual environment
// under the project's tools folder (`make tools`), never into the system's
// Python.
package schemathesis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/shopledger/shopledger/internal/debpkg"
	"github.com/shopledger/shopledger/internal/localkafka"
)

// Version is the pinned Schemathesis release.
const Version = "4.32.5"

// Python is what creating the virtual environment needs (Debian's python3
// lacks the venv module without it).
var Python = debpkg.Need{Bin: "python3", Pkg: "python3-venv"}

// ErrNotInstalled is returned by Bin when the pinned release is not
// installed; `make tools` installs it.
var ErrNotInstalled = errors.New("schemathesis not installed (run make tools)")

// Dir is the virtual environment of the pinned release.
func Dir() (string, error) {
	tools, err := localkafka.ToolsDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(tools, "schemathesis-"+Version), nil
}

// Bin is the schemathesis command: $SHOPLEDGER_SCHEMATHESIS, else the
// pinned release's in Dir.
func Bin() (string, error) {
	if b := os.Getenv("SHOPLEDGER_SCHEMATHESIS"); b != "" {
		return b, nil
	}
	dir, err := Dir()
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, complete)); err != nil {
		return "", fmt.Errorf("%w: %s", ErrNotInstalled, dir)
	}
	return filepath.Join(dir, "bin", "schemathesis"), nil
}

// complete marks a virtual environment whose install finished (a venv's
// scripts name its own path, so it cannot be made elsewhere and moved).
const complete = ".installed"

// Install creates Dir's virtual environment and installs the pinned
// release into it, unless it is there; it reports whether it installed.
func Install(ctx context.Context, log func(string, ...any)) (bool, error) {
	dir, err := Dir()
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(filepath.Join(dir, complete)); err == nil {
		return false, nil
	}
	if err := debpkg.Ensure(ctx, log, Python); err != nil {
		return false, err
	}
	os.RemoveAll(dir) // an install cut short
	log("installing schemathesis %s with pip into %s", Version, dir)
	for _, args := range [][]string{{"python3", "-m", "venv", dir}, {filepath.Join(dir, "bin", "pip"), "install", "--quiet", "schemathesis==" + Version}} {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return false, fmt.Errorf("%v: %w (Debian: apt-get install python3-venv)", args, err)
		}
	}
	return true, os.WriteFile(filepath.Join(dir, complete), []byte(Version+"\n"), 0o644)
}
