// Package sqldb opens MySQL/MariaDB connection pools with the settings every
// shopledger component relies on: UTC times, parsed DATETIMEs, client-side
// parameter interpolation (one round trip per statement).
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
)

// Config addresses one database.
type Config struct {
	Addr     string `mapstructure:"addr"`     // host:port
	User     string `mapstructure:"user"`     // user name
	Password string `mapstructure:"password"` // password, if any
	Database string `mapstructure:"database"` // database name; created by Ensure
	// MultiStatements allows several statements per Exec; only migrations
	// need it.
	MultiStatements bool `mapstructure:"-"`
}

// DSN renders the go-sql-driver data source name.
func (c Config) DSN() string {
	m := mysql.NewConfig()
	m.Net, m.Addr, m.User, m.Passwd, m.DBName = "tcp", c.Addr, c.User, c.Password, c.Database
	m.ParseTime, m.Loc = true, time.UTC
	m.InterpolateParams = true
	m.MultiStatements = c.MultiStatements
	m.Timeout = 5 * time.Second
	m.Params = map[string]string{"time_zone": "'+00:00'"}
	return m.FormatDSN()
}

// Open returns a pool for c. It does not connect yet.
func Open(c Config) (*sql.DB, error) {
	db, err := sql.Open("mysql", c.DSN())
	if err != nil {
		return nil, fmt.Errorf("open %s/%s: %w", c.Addr, c.Database, err)
	}
	db.SetConnMaxLifetime(time.Hour)
	db.SetMaxIdleConns(8)
	return db, nil
}

// Ensure creates c.Database if it does not exist.
func Ensure(ctx context.Context, c Config) error {
	root := c
	root.Database = ""
	db, err := Open(root)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+c.Database+"` CHARACTER SET utf8mb4"); err != nil {
		return fmt.Errorf("create database %s on %s: %w", c.Database, c.Addr, err)
	}
	return nil
}

// Wait pings db until it answers or ctx ends.
func Wait(ctx context.Context, db *sql.DB) error {
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := db.PingContext(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("database not reachable: %w", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Conflict reports errors after which a transaction may simply be run
// again: a duplicate key (a concurrent transaction inserted the same row
// first), a deadlock, a lock wait timeout.
func Conflict(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1062 || me.Number == 1213 || me.Number == 1205)
}

// Text fits s into a text column of maxChars characters (VARCHAR(n) in
// utf8mb4 counts characters): invalid UTF-8 becomes U+FFFD, which a strict
// server would refuse, and s is cut at a character boundary, with "…" at
// the end when cut. Text from users (a reason quoting a field, say) must
// never make an insert fail and stop a stage.
func Text(s string, maxChars int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= maxChars {
		return s
	}
	n := 0
	for i := range s {
		if n == maxChars-1 {
			return s[:i] + "…"
		}
		n++
	}
	return s
}
