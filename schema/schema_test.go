package schema_test

import (
	"context"
	"errors"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/shopledger/shopledger/internal/localstack"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/schema"
)

// The migrator role alone creates and migrates every database; each
// component's role then sees its database migrated and can do its work,
// and no more than that.
func TestRolesMigrateAndNoMore(t *testing.T) {
	inst := stacktest.MariaDB(t)
	ctx := context.Background()
	check := func(user, db string, set schema.Set) error {
		d, err := sqldb.Open(sqldb.Config{Addr: inst.Addr(), User: user, Database: db})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		return schema.Check(ctx, d, set)
	}
	if err := check("pipelineapi", "pipeline_db", schema.Pipeline); !errors.Is(err, schema.ErrNotMigrated) {
		t.Fatalf("Check before migrating = %v, want ErrNotMigrated", err)
	}
	migrator := sqldb.Config{Addr: inst.Addr(), User: "migrator"}
	if err := localstack.MigrateControl(ctx, migrator); err != nil {
		t.Fatalf("MigrateControl as migrator: %v", err)
	}
	if err := localstack.MigrateShard(ctx, migrator); err != nil {
		t.Fatalf("MigrateShard as migrator: %v", err)
	}
	for _, c := range []struct {
		user, db string
		set      schema.Set
	}{{"pipelineapi", "pipeline_db", schema.Pipeline}, {"splitter", "splitter_db", schema.Splitter},
		{"balance", "balance_db", schema.Balance}, {"cache", "cache_db", schema.Cache}, {"worker", "shop", schema.Shard}} {
		if err := check(c.user, c.db, c.set); err != nil {
			t.Errorf("Check as %s on %s = %v, want nil", c.user, c.db, err)
		}
	}
	denied := []struct{ user, db, stmt string }{
		{"worker", "shop", "CREATE TABLE x (id INT)"},
		{"worker", "shop", "DROP TABLE events"},
		{"cdc", "shop", "INSERT INTO good (id, name) VALUES (1, 'x')"},
		{"reader", "shop", "DELETE FROM events"},
		{"balance", "balance_db", "SELECT COUNT(*) FROM pipeline_db.pipeline_tracking"},
		{"pipelineapi", "pipeline_db", "SELECT COUNT(*) FROM shop.events"},
		{"cache", "cache_db", "ALTER TABLE stock ADD COLUMN x INT"},
	}
	for _, d := range denied {
		db := stacktest.As(t, inst, d.user, d.db)
		_, err := db.ExecContext(ctx, d.stmt)
		var me *mysql.MySQLError
		if !errors.As(err, &me) || (me.Number != 1142 && me.Number != 1044 && me.Number != 1227) {
			t.Errorf("%s: %s = %v, want access denied", d.user, d.stmt, err)
		}
	}
	root := stacktest.As(t, inst, "root", "pipeline_db")
	if _, err := root.ExecContext(ctx, "UPDATE schema_migrations SET dirty = 1"); err != nil {
		t.Fatal(err)
	}
	if err := check("pipelineapi", "pipeline_db", schema.Pipeline); !errors.Is(err, schema.ErrMigration) {
		t.Errorf("Check of a dirty database = %v, want ErrMigration", err)
	}
}
