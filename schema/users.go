package schema

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Server is a kind of database server: the control server holds
// pipeline_db, splitter_db, balance_db and cache_db; a shard server holds
// one shard's shop database.
type Server string

// The kinds of server.
const (
	ControlServer Server = "control"
	ShardServer   Server = "shard"
)

// Role is a database user of one component and the least it needs. The
// local stack, the test harness and the compose init scripts create these
// same users, so a missing grant fails a test here rather than in
// production.
type Role struct {
	User   string
	Server Server
	Grants []string // each "<privileges> ON <object>"
	About  string
}

// PasswordEnv is the environment variable that holds the role's password
// in deployments (compose's .env), e.g. WORKER_DB_PASSWORD.
func (r Role) PasswordEnv() string { return strings.ToUpper(r.User) + "_DB_PASSWORD" }

const dml = "SELECT, INSERT, UPDATE, DELETE"

// Roles are every component's database users. Nothing connects as root.
var Roles = []Role{
	{User: "pipelineapi", Server: ControlServer, Grants: []string{dml + " ON pipeline_db.*"}, About: "pipelineapi: pipeline_tracking"},
	{User: "splitter", Server: ControlServer, Grants: []string{dml + " ON splitter_db.*"}, About: "shard-splitter: order index, held returns, claims"},
	{User: "balance", Server: ControlServer, Grants: []string{dml + " ON balance_db.*"}, About: "balance: its own database"},
	{User: "cache", Server: ControlServer, Grants: []string{dml + " ON cache_db.*"}, About: "cache: its own database"},
	{User: "reader", Server: ControlServer, Grants: []string{"SELECT ON pipeline_db.*", "SELECT ON splitter_db.*"},
		About: "audit: reads the pipeline and the splitter's records"},
	{User: "migrator", Server: ControlServer, Grants: []string{"ALL PRIVILEGES ON pipeline_db.*", "ALL PRIVILEGES ON splitter_db.*",
		"ALL PRIVILEGES ON balance_db.*", "ALL PRIVILEGES ON cache_db.*"}, About: "stack migrate: creates and migrates the databases"},
	{User: "worker", Server: ShardServer, Grants: []string{dml + " ON shop.*"}, About: "shard-worker: the shard's only writer, of the ledger rows and of the outbox (inserted and deleted in each transaction)"},
	{User: "cdc", Server: ShardServer, Grants: []string{"SELECT ON shop.*", "RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.*"},
		About: "cdc-producer: snapshot reads (SELECT, RELOAD for the global read lock), the binlog as a replica, binlog positions"},
	{User: "reader", Server: ShardServer, Grants: []string{"SELECT ON shop.*"}, About: "audit and the consumers' reconcile: read the shard"},
	{User: "migrator", Server: ShardServer, Grants: []string{"ALL PRIVILEGES ON shop.*"}, About: "stack migrate: creates and migrates the shard database"},
}

// RolesOf lists the roles of one kind of server.
func RolesOf(s Server) []Role {
	var out []Role
	for _, r := range Roles {
		if r.Server == s {
			out = append(out, r)
		}
	}
	return out
}

// CreateUsers creates (or updates) the users of server kind s on db, a
// connection with the right to create users and grant, with the password
// password(user) ("" for none: the local stack's and tests' throwaway
// servers listen on 127.0.0.1 only).
func CreateUsers(ctx context.Context, db *sql.DB, s Server, password func(user string) string) error {
	for _, r := range RolesOf(s) {
		stmts := []string{
			fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%'", r.User),
			fmt.Sprintf("ALTER USER '%s'@'%%' IDENTIFIED BY %s", r.User, quote(password(r.User))),
		}
		for _, g := range r.Grants {
			stmts = append(stmts, fmt.Sprintf("GRANT %s TO '%s'@'%%'", g, r.User))
		}
		for _, q := range stmts {
			if _, err := db.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("user %s: %s: %w", r.User, strings.SplitN(q, " IDENTIFIED", 2)[0], err)
			}
		}
	}
	return nil
}

// quote renders s as an SQL string literal.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}

// InitScript renders the init script of a server of kind s for the MySQL
// image's /docker-entrypoint-initdb.d: it creates the databases and the
// users of s with the passwords from each role's PasswordEnv (required).
// deploy/mysql/ holds its output, kept equal by a test.
//
// The official image's entrypoint sources a non-executable *.sh file in its
// own shell (an executable one runs in a child that lacks the entrypoint's
// functions), so the script calls docker_process_sql, which runs SQL as
// root over the socket, and sets no shell options: the entrypoint runs
// under its own `set -eo pipefail`, and a `set -u` here would break its
// functions that test "$1" without arguments. The user statements are kept
// out of the binlog, as the entrypoint keeps its own, so the password
// hashes do not reach the binlog the cdc-producer reads.
func InitScript(s Server) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Generated from schema/users.go (schema.InitScript): do not edit; go test ./deploy/ -run TestInitScripts -update rewrites it.\n")
	fmt.Fprintf(&b, "# Creates shopledger's databases and least-privilege users on the %s server at its first start.\n", s)
	fmt.Fprintf(&b, "# Sourced (keep it non-executable) by the MySQL image's entrypoint, which provides docker_process_sql\n")
	fmt.Fprintf(&b, "# (as root) and runs under set -eo pipefail; no shell options here, they would stay set in the entrypoint.\n")
	b.WriteString("sql_quote() { printf '%s' \"$1\" | sed -e 's/\\\\/\\\\\\\\/g' -e \"s/'/''/g\"; }\n")
	for _, r := range RolesOf(s) {
		fmt.Fprintf(&b, ": \"${%s:?set %s in .env (see .env.example)}\"\n", r.PasswordEnv(), r.PasswordEnv())
	}
	b.WriteString("docker_process_sql <<SQL\n")
	b.WriteString("SET @@SESSION.sql_log_bin = 0;\n")
	dbs := []string{"shop"}
	if s == ControlServer {
		dbs = []string{"pipeline_db", "splitter_db", "balance_db", "cache_db"}
	}
	for _, d := range dbs {
		fmt.Fprintf(&b, "CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8mb4;\n", d)
	}
	for _, r := range RolesOf(s) {
		fmt.Fprintf(&b, "-- %s\n", r.About)
		fmt.Fprintf(&b, "CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '$(sql_quote \"$%s\")';\n", r.User, r.PasswordEnv())
		for _, g := range r.Grants {
			fmt.Fprintf(&b, "GRANT %s TO '%s'@'%%';\n", g, r.User)
		}
	}
	b.WriteString("SQL\n")
	b.WriteString("unset -f sql_quote\n")
	return b.String()
}
