// Package debpkg installs the Debian packages the local stack and the tests
// need when the machine lacks them (MariaDB, Java and Maven for Apache
// Kafka, docker-compose, Prometheus): one apt-get update and one install for
// everything missing, when the process may (root, apt-get present).
package debpkg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Need is a program and the package that provides it.
type Need struct {
	Bin string // looked up on PATH and in the sbin folders
	Pkg string
}

// ErrMissing is returned when programs are missing and cannot be installed
// here (not root, or no apt-get); its message names the packages.
var ErrMissing = errors.New("missing programs")

// Have reports whether bin is on PATH or in /usr/sbin, /usr/local/sbin.
func Have(bin string) bool {
	if _, err := exec.LookPath(bin); err == nil {
		return true
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err == nil {
			return true
		}
	}
	return false
}

// Ensure installs the packages of the needs whose program is missing, and
// returns an error wrapping ErrMissing naming what still is.
func Ensure(ctx context.Context, log func(string, ...any), needs ...Need) error {
	var pkgs []string
	for _, n := range needs {
		if !Have(n.Bin) {
			pkgs = append(pkgs, n.Pkg)
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	if _, err := exec.LookPath("apt-get"); err == nil && os.Geteuid() == 0 {
		log("installing %s with apt-get", strings.Join(pkgs, " "))
		for _, args := range [][]string{{"update"}, append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)} {
			cmd := exec.CommandContext(ctx, "apt-get", args...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("apt-get %s: %w", strings.Join(args, " "), err)
			}
		}
	}
	var missing []string
	for _, n := range needs {
		if !Have(n.Bin) {
			missing = append(missing, n.Pkg)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: install them with `apt-get install -y %s` (or put them on PATH)", ErrMissing, strings.Join(missing, " "))
	}
	return nil
}
