// Package deploy_test keeps the Docker deployment honest on a machine
// without a Docker engine: the MySQL init scripts are schema.InitScript's
// output and behave under the image's entrypoint (this file), the compose
// file interpolates, configures every binary with keys it knows and wires
// the services together as they connect (compose_test.go), and the image
// builds what compose runs (dockerfile_test.go).
//
// After changing schema.Roles, rewrite deploy/mysql/*.sh with
//
//	go test ./deploy/ -run TestInitScripts -update
package deploy_test

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopledger/shopledger/schema"
)

var update = flag.Bool("update", false, "rewrite deploy/mysql/*.sh from schema.InitScript")

// initScripts are the committed init scripts, by the kind of server whose
// /docker-entrypoint-initdb.d they are mounted into.
var initScripts = map[schema.Server]string{
	schema.ControlServer: "mysql/control-init.sh",
	schema.ShardServer:   "mysql/shard-init.sh",
}

// TestInitScripts checks that deploy/mysql/*.sh are schema.InitScript's
// output byte for byte, and not executable: the entrypoint sources a
// non-executable .sh file, which is what gives it docker_process_sql.
func TestInitScripts(t *testing.T) {
	for kind, path := range initScripts {
		want := schema.InitScript(kind)
		if *update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (write it with: go test ./deploy/ -run TestInitScripts -update)", err)
		}
		if string(got) != want {
			t.Errorf("%s differs from schema.InitScript(%q); run: go test ./deploy/ -run TestInitScripts -update", path, kind)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&0o111 != 0 {
			t.Errorf("%s is executable (%v): the entrypoint would run it in a child shell without docker_process_sql; chmod 0644", path, fi.Mode())
		}
	}
}

// entrypointShim sources an init script as the MySQL image's entrypoint
// does: in its own shell under `set -eo pipefail`, with docker_process_sql
// (here it prints the SQL it would run as root). Afterwards it checks that
// the script left the shell as it found it, since the entrypoint's own
// functions run on after it.
const entrypointShim = `set -eo pipefail
docker_process_sql() {
	if [ '--dont-use-mysql-root-password' = "$1" ]; then shift; fi
	cat
}
. "$1"
case $- in *u*) echo "the script left set -u on" >&2; exit 1 ;; esac
if declare -F sql_quote >/dev/null; then echo "the script left sql_quote defined" >&2; exit 1; fi
docker_process_sql <<<'SELECT 1;' >/dev/null
echo "-- entrypoint goes on"
`

// TestInitScriptsUnderEntrypoint sources each script as the entrypoint
// would, with passwords that need quoting, and without one of them.
func TestInitScriptsUnderEntrypoint(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not found: the init scripts are not run")
	}
	shim := filepath.Join(t.TempDir(), "entrypoint.sh")
	if err := os.WriteFile(shim, []byte(entrypointShim), 0o644); err != nil {
		t.Fatal(err)
	}
	const password = `it's a \ "$HOME" $(x)`
	const quoted = `'it''s a \\ "$HOME" $(x)'`
	for kind, path := range initScripts {
		roles := schema.RolesOf(kind)
		env := []string{"PATH=" + os.Getenv("PATH")}
		for _, r := range roles {
			env = append(env, r.PasswordEnv()+"="+password)
		}
		cmd := exec.Command(bash, shim, path)
		cmd.Env = env
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("sourcing %s as the entrypoint does: %v\n%s", path, err, stderr.String())
		}
		sql := string(out)
		for _, r := range roles {
			want := "CREATE USER IF NOT EXISTS '" + r.User + "'@'%' IDENTIFIED BY " + quoted + ";"
			if !strings.Contains(sql, want) {
				t.Errorf("%s: SQL lacks %q:\n%s", path, want, sql)
			}
			for _, g := range r.Grants {
				if want := "GRANT " + g + " TO '" + r.User + "'@'%';"; !strings.Contains(sql, want) {
					t.Errorf("%s: SQL lacks %q", path, want)
				}
			}
		}
		if !strings.HasPrefix(sql, "SET @@SESSION.sql_log_bin = 0;\n") || !strings.HasSuffix(sql, "-- entrypoint goes on\n") {
			t.Errorf("%s: SQL does not start by leaving the binlog out, or the entrypoint did not go on:\n%s", path, sql)
		}

		missing := roles[len(roles)-1].PasswordEnv()
		cmd = exec.Command(bash, shim, path)
		cmd.Env = env[:len(env)-1]
		out, err = cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), missing) || strings.Contains(string(out), "CREATE USER") {
			t.Errorf("%s without %s: err %v, output %q; want a failure naming it before any SQL", path, missing, err, out)
		}
	}
}

// kindOf is the kind of server whose init script is at path.
func kindOf(path string) (schema.Server, bool) {
	for kind, script := range initScripts {
		if filepath.Base(path) == filepath.Base(script) {
			return kind, true
		}
	}
	return "", false
}

// passwordEnvs are the variables holding the passwords of a kind's users.
func passwordEnvs(kind schema.Server) []string {
	var out []string
	for _, r := range schema.RolesOf(kind) {
		out = append(out, r.PasswordEnv())
	}
	return out
}
