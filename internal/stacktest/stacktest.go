// Package stacktest starts the real things integration tests need: MariaDB
// instances with row-based binlog on free ports, databases with their
// migrations applied, Apache Kafka clusters. Everything is removed when the
// test ends.
package stacktest

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/localdb"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/schema"
)

var serverIDs atomic.Uint32

// MariaDB starts a fresh instance for t and stops it at cleanup, with the
// least-privilege users of both kinds of server (schema.Roles, without
// passwords), so that tests connect components as in production. The
// server log is printed when the test failed.
func MariaDB(t testing.TB) *localdb.Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := localdb.EnsureServer(ctx, t.Logf); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "shopledger-db-")
	if err != nil {
		t.Fatal(err)
	}
	var inst *localdb.Instance
	for attempt := 0; ; attempt++ {
		port, err := localdb.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		inst, err = localdb.Start(ctx, localdb.Options{
			Name: "test-" + filepath.Base(dir), Dir: dir, Port: port, ServerID: 100 + serverIDs.Add(1),
			Extra: []string{"--innodb-buffer-pool-size=64M", "--innodb-log-file-size=64M"},
		})
		if err == nil {
			break
		}
		if attempt == 2 {
			t.Fatalf("start MariaDB: %v", err)
		}
	}
	users, err := inst.DB("")
	if err != nil {
		t.Fatal(err)
	}
	defer users.Close()
	for _, s := range []schema.Server{schema.ControlServer, schema.ShardServer} {
		if err := schema.CreateUsers(ctx, users, s, func(string) string { return "" }); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if err := inst.Stop(); err != nil {
			t.Logf("stop MariaDB: %v", err)
		}
		if t.Failed() {
			if b, err := os.ReadFile(inst.ErrorLog()); err == nil && len(b) > 4000 {
				t.Logf("server log tail:\n%s", b[len(b)-4000:])
			}
		}
		os.RemoveAll(dir)
	})
	return inst
}

// Config returns the connection config of root for database name on inst,
// for test set-up and inspection.
func Config(inst *localdb.Instance, name string) sqldb.Config {
	return sqldb.Config{Addr: inst.Addr(), User: "root", Database: name}
}

// As opens database name on inst as user (a schema.Roles user), the way
// the component of that role connects; closed at cleanup.
func As(t testing.TB, inst *localdb.Instance, user, name string) *sql.DB {
	t.Helper()
	db, err := sqldb.Open(sqldb.Config{Addr: inst.Addr(), User: user, Database: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Database creates database name on inst, applies set's migrations and
// returns an open pool, closed at cleanup.
func Database(t testing.TB, inst *localdb.Instance, name string, set schema.Set) *sql.DB {
	t.Helper()
	ctx := context.Background()
	cfg := Config(inst, name)
	if err := schema.Apply(ctx, cfg, set); err != nil {
		t.Fatalf("migrate %s: %v", name, err)
	}
	db, err := sqldb.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
