// Package shard routes shops to MySQL shards: shop i lives on shard i % N.
package shard

import (
	"database/sql"
	"fmt"

	"github.com/shopledger/shopledger/internal/config"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// For returns the shard that owns shopID among n shards.
func For(shopID int64, n int) int {
	s := shopID % int64(n)
	if s < 0 {
		s += int64(n)
	}
	return int(s)
}

// All returns the shard numbers 0..n-1.
func All(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// Conns addresses every shard database, for the components that read the
// shards directly (audit-style checks).
type Conns struct {
	Count int `mapstructure:"count"`
	// Addrs lists host:port per shard; empty means 127.0.0.1:(33061 + i).
	Addrs    []string `mapstructure:"addrs"`
	Database string   `mapstructure:"database"`
	User     string   `mapstructure:"user"`
	Password string   `mapstructure:"password"`
}

// DefaultConns are the local stack's shards.
func DefaultConns() Conns { return Conns{Count: 2, Database: "shop", User: "reader"} }

// Addr returns shard i's host:port.
func (c Conns) Addr(i int) string {
	if len(c.Addrs) > 0 {
		return c.Addrs[i]
	}
	return fmt.Sprintf("127.0.0.1:%d", 33061+i)
}

// Check reports a bad shards section under key prefix.
func (c Conns) Check(ch *config.Checks, prefix string) {
	ch.Check(c.Count >= 1, prefix+".count", "must be at least 1, got %d", c.Count)
	ch.Check(len(c.Addrs) == 0 || len(c.Addrs) == c.Count, prefix+".addrs", "must list %d addresses, got %d", c.Count, len(c.Addrs))
	ch.Check(c.Database != "", prefix+".database", "must be set")
}

// Open returns a pool per shard.
func (c Conns) Open() ([]*sql.DB, error) {
	var dbs []*sql.DB
	for i := range c.Count {
		db, err := sqldb.Open(sqldb.Config{Addr: c.Addr(i), User: c.User, Password: c.Password, Database: c.Database})
		if err != nil {
			for _, d := range dbs {
				d.Close()
			}
			return nil, err
		}
		dbs = append(dbs, db)
	}
	return dbs, nil
}
