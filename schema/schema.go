// Package schema holds the SQL migrations of every shopledger database,
// embedded in the binaries, and applies them with golang-migrate; and the
// least-privilege database users of every component (users.go). One
// migrator (`stack migrate`, as a user allowed DDL) applies migrations; the
// components only wait until their database is migrated (Await), since they
// connect as users without DDL rights.
package schema

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/golang-migrate/migrate/v4"
	migratemysql "github.com/golang-migrate/migrate/v4/database/mysql"
	"github.com/golang-migrate/migrate/v4/source/iofs"

	"github.com/shopledger/shopledger/internal/sqldb"
)

//go:embed shard/*.sql pipeline/*.sql splitter/*.sql balance/*.sql cache/*.sql
var files embed.FS

// Set names one database's migrations: the folder they live in.
type Set string

// The migration sets.
const (
	Shard    Set = "shard"    // every shard database
	Pipeline Set = "pipeline" // pipeline_db
	Splitter Set = "splitter" // splitter_db
	Balance  Set = "balance"  // balance_db
	Cache    Set = "cache"    // cache_db
)

// Migrate applies every pending migration of set to db, which must have been
// opened with multiStatements=true. Concurrent callers on the same database
// are serialised by golang-migrate's GET_LOCK.
func Migrate(ctx context.Context, db *sql.DB, set Set) error {
	src, err := iofs.New(files, string(set))
	if err != nil {
		return fmt.Errorf("migrations %s: %w", set, err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", set, err)
	}
	drv, err := migratemysql.WithConnection(ctx, conn, &migratemysql.Config{})
	if err != nil {
		conn.Close()
		return fmt.Errorf("migrate %s: %w", set, err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "mysql", drv)
	if err != nil {
		conn.Close()
		return fmt.Errorf("migrate %s: %w", set, err)
	}
	defer m.Close()
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate %s: %w", set, err)
	}
	return nil
}

// Apply creates the database named in c if needed and migrates it.
func Apply(ctx context.Context, c sqldb.Config, set Set) error {
	if err := sqldb.Ensure(ctx, c); err != nil {
		return err
	}
	c.MultiStatements = true
	db, err := sqldb.Open(c)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := Migrate(ctx, db, set); err != nil {
		return fmt.Errorf("%s on %s: %w", c.Database, c.Addr, err)
	}
	return nil
}

// Latest is the newest migration version of set.
func Latest(set Set) (uint64, error) {
	entries, err := fs.ReadDir(files, string(set))
	if err != nil {
		return 0, fmt.Errorf("migrations %s: %w", set, err)
	}
	var latest uint64
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		if v, err := strconv.ParseUint(num, 10, 64); ok && err == nil {
			latest = max(latest, v)
		}
	}
	return latest, nil
}

// ErrNotMigrated is returned by Check for a database whose migrations are
// not (all) applied yet: run `stack migrate` (as a user allowed DDL).
var ErrNotMigrated = errors.New("database not migrated")

// ErrMigration is returned by Check for a database a component cannot use
// as it is: a migration failed half-way (dirty), or the database is newer
// than this binary knows.
var ErrMigration = errors.New("database schema unusable")

// Check reports whether db holds set's latest migration, cleanly applied.
func Check(ctx context.Context, db *sql.DB, set Set) error {
	latest, err := Latest(set)
	if err != nil {
		return err
	}
	var version uint64
	var dirty bool
	err = db.QueryRowContext(ctx, "SELECT version, dirty FROM schema_migrations LIMIT 1").Scan(&version, &dirty)
	var me *mysql.MySQLError
	switch {
	case errors.Is(err, sql.ErrNoRows), errors.As(err, &me) && (me.Number == 1146 || me.Number == 1049): // no such table, database
		return fmt.Errorf("%w: no migration applied, want version %d", ErrNotMigrated, latest)
	case err != nil:
		return fmt.Errorf("read schema version: %w", err)
	case dirty:
		return fmt.Errorf("%w: migration %d failed half-way (dirty); repair it and run the migrations again", ErrMigration, version)
	case version > latest:
		return fmt.Errorf("%w: at version %d, newer than this binary's %d", ErrMigration, version, latest)
	case version < latest:
		return fmt.Errorf("%w: at version %d, want %d", ErrNotMigrated, version, latest)
	}
	return nil
}

// Await waits until the database of c holds set's latest migration,
// logging every so often while it does not, and returns at once on
// ErrMigration or when ctx ends.
func Await(ctx context.Context, c sqldb.Config, set Set, log *slog.Logger) error {
	db, err := sqldb.Open(c)
	if err != nil {
		return err
	}
	defer db.Close()
	var logged time.Time
	for {
		err := Check(ctx, db, set)
		if err == nil || errors.Is(err, ErrMigration) {
			if err != nil {
				err = fmt.Errorf("%s on %s: %w", c.Database, c.Addr, err)
			}
			return err
		}
		if time.Since(logged) > 10*time.Second {
			log.Warn("waiting for the database to be migrated (stack migrate)", "database", c.Database, "addr", c.Addr, "err", err)
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s on %s: %w", c.Database, c.Addr, err)
		case <-time.After(time.Second):
		}
	}
}
