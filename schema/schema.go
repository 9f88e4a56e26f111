// Package schema holds the SQL migrations of every shopledger database,
// embedded in the binaries, and applies them with golang-migrate.
package schema

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"

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
// are serialised by golang-migrate's GET_LOCK, so every component can migrate
// its own database at start.
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
