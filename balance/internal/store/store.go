// Package store keeps balance_db: per user and per (user, shard) balance,
// credits, debits and transaction count, built from account_transaction
// change events as commutative increments. It is a consume.Handler: the
// consumer loop decodes, dedupes (per shard and partition, see package
// consume) and calls Apply in the batch's transaction; a newer snapshot of
// a shard first Resets that shard's part of every balance.
package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/cdc"
	"github.com/shopledger/shopledger/internal/consume"
	"github.com/shopledger/shopledger/internal/money"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// txRow is the part of an account_transaction row image the balance needs.
type txRow struct {
	ID     *int64       `json:"id"`
	UserID *int64       `json:"user_id"`
	Amount *money.Cents `json:"amount"`
	Type   string       `json:"type"`
}

// Change is one account transaction to add.
type Change struct {
	shard, partition int
	id, user         int64
	amount           money.Cents // signed: credits add, debits subtract
	src              cdc.Source
}

// Source is where the change comes from (for freshness).
func (c Change) Source() cdc.Source { return c.src }

// Store is balance_db.
type Store struct {
	db  *sql.DB
	log *slog.Logger
}

// New returns the store over db (balance_db, migrated).
func New(db *sql.DB, log *slog.Logger) *Store { return &Store{db: db, log: log} }

// Decode turns a message into a change, or says why it cannot be applied.
func (s *Store) Decode(m kafka.Message) (Change, cdc.Position, error) {
	e, err := cdc.Decode[txRow](m.Value)
	if err != nil {
		return Change{}, cdc.Position{}, err
	}
	if e.Source.Table != "account_transaction" {
		return Change{}, cdc.Position{}, fmt.Errorf("%w: %q, not account_transaction", consume.ErrUnknownTable, e.Source.Table)
	}
	if e.Op != cdc.OpCreate && e.Op != cdc.OpRead {
		// The ledger never updates or deletes a transaction (a correction is
		// a new transaction); such a change is a manual edit of the shard,
		// which the reconciliation reports.
		return Change{}, cdc.Position{}, fmt.Errorf("op %q on account_transaction: transactions are append-only", e.Op)
	}
	r := e.After
	if r.ID == nil || r.UserID == nil || r.Amount == nil {
		return Change{}, cdc.Position{}, fmt.Errorf("account_transaction row without id, user_id or amount")
	}
	c := Change{shard: e.Source.Shard, partition: m.Partition, id: *r.ID, user: *r.UserID, src: e.Source}
	switch r.Type {
	case "credit":
		c.amount = *r.Amount
	case "debit":
		c.amount = -*r.Amount
	default:
		return Change{}, cdc.Position{}, fmt.Errorf("account_transaction %d: type %q is neither credit nor debit", c.id, r.Type)
	}
	pos, err := e.Source.Position(e.Op)
	return c, pos, err
}

type delta struct {
	credits, debits money.Cents
	n, partition    int
}

func (d *delta) add(c Change) {
	if c.amount >= 0 {
		d.credits += c.amount
	} else {
		d.debits -= c.amount
	}
	d.n++
	d.partition = c.partition
}

type userShard struct {
	user  int64
	shard int
}

// Apply adds new changes to the balances in tx.
func (s *Store) Apply(ctx context.Context, tx *sql.Tx, changes []Change) error {
	perShard := map[userShard]*delta{}
	perUser := map[int64]*delta{}
	for _, c := range changes {
		get(perShard, userShard{c.user, c.shard}).add(c)
		get(perUser, c.user).add(c)
	}
	// Rows in key order, so that concurrent batches lock them in one order.
	us := slices.SortedFunc(maps.Keys(perShard), func(a, b userShard) int { return cmp.Or(cmp.Compare(a.user, b.user), cmp.Compare(a.shard, b.shard)) })
	sb := sqldb.Bulk{Head: "INSERT INTO shard_balance (user_id, shard, balance, credits, debits, tx_count) VALUES ",
		Tail: ` ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance), credits = credits + VALUES(credits),
			debits = debits + VALUES(debits), tx_count = tx_count + VALUES(tx_count)`, Cols: 6}
	for _, k := range us {
		d := perShard[k]
		sb.Add(k.user, k.shard, (d.credits - d.debits).String(), d.credits.String(), d.debits.String(), d.n)
	}
	if err := sb.Exec(ctx, tx); err != nil {
		return fmt.Errorf("shard balances: %w", err)
	}
	ub := sqldb.Bulk{Head: "INSERT INTO balance (user_id, balance, credits, debits, tx_count, kafka_partition) VALUES ",
		Tail: ` ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance), credits = credits + VALUES(credits),
			debits = debits + VALUES(debits), tx_count = tx_count + VALUES(tx_count), kafka_partition = VALUES(kafka_partition)`, Cols: 6}
	for _, u := range slices.Sorted(maps.Keys(perUser)) {
		d := perUser[u]
		ub.Add(u, (d.credits - d.debits).String(), d.credits.String(), d.debits.String(), d.n, d.partition)
	}
	if err := ub.Exec(ctx, tx); err != nil {
		return fmt.Errorf("balances: %w", err)
	}
	return nil
}

// Reset removes shard's part of every balance in tx, before a newer
// snapshot of the shard rebuilds it.
func (s *Store) Reset(ctx context.Context, tx *sql.Tx, shard int) error {
	for _, q := range []string{
		`UPDATE balance b JOIN shard_balance s ON s.user_id = b.user_id AND s.shard = ?
			SET b.balance = b.balance - s.balance, b.credits = b.credits - s.credits, b.debits = b.debits - s.debits, b.tx_count = b.tx_count - s.tx_count`,
		"DELETE FROM shard_balance WHERE shard = ?",
	} {
		if _, err := tx.ExecContext(ctx, q, shard); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx, "DELETE FROM balance WHERE tx_count = 0")
	return err
}

// Clear empties every balance in tx, before a rebuild applies every
// change again.
func (s *Store) Clear(ctx context.Context, tx *sql.Tx) error {
	for _, table := range []string{"shard_balance", "balance"} {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+table); err != nil {
			return fmt.Errorf("empty %s: %w", table, err)
		}
	}
	return nil
}

func get[K comparable, V any](m map[K]*V, k K) *V {
	v := m[k]
	if v == nil {
		v = new(V)
		m[k] = v
	}
	return v
}

// Totals are a balance and what it is made of.
type Totals struct {
	Balance money.Cents `json:"balance"`
	Credits money.Cents `json:"credits"`
	Debits  money.Cents `json:"debits"`
	TxCount int64       `json:"tx_count"`
}

// ShardTotals are one shard's part of a user's balance.
type ShardTotals struct {
	Shard int `json:"shard"`
	Totals
}

// Freshness tells up to where a shard's changes are applied for a user: the
// source position of the furthest change applied from the user's partition
// (every earlier change of that shard for the user is applied too, since a
// partition keeps the shard's order), and its commit time on the shard.
type Freshness struct {
	Shard        int    `json:"shard"`
	File         string `json:"file"`
	Pos          int64  `json:"pos"`
	GTID         string `json:"gtid,omitempty"`
	SourceTimeMs int64  `json:"source_ts_ms"`
	AppliedAt    string `json:"applied_at"`
}

// User is one user's balance.
type User struct {
	UserID int64 `json:"user_id"`
	Totals
	Shards    []ShardTotals `json:"shards"`
	Freshness []Freshness   `json:"freshness"`
	UpdatedAt string        `json:"updated_at"`
}

// ErrNotFound is returned for a user no transaction was applied for.
var ErrNotFound = errors.New("not found")

const timeFormat = "2006-01-02T15:04:05.000Z"

// User returns one user's balance, per shard breakdown and freshness.
func (s *Store) User(ctx context.Context, id int64) (*User, error) {
	u := &User{UserID: id}
	var part int
	var upd sql.NullTime
	err := s.db.QueryRowContext(ctx, "SELECT balance, credits, debits, tx_count, kafka_partition, updated_at FROM balance WHERE user_id = ?", id).
		Scan(&u.Balance, &u.Credits, &u.Debits, &u.TxCount, &part, &upd)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	u.UpdatedAt = upd.Time.UTC().Format(timeFormat)
	err = sqldb.Each(ctx, s.db, "SELECT shard, balance, credits, debits, tx_count FROM shard_balance WHERE user_id = ? ORDER BY shard", func(r *sql.Rows) error {
		var t ShardTotals
		err := r.Scan(&t.Shard, &t.Balance, &t.Credits, &t.Debits, &t.TxCount)
		u.Shards = append(u.Shards, t)
		return err
	}, id)
	if err != nil {
		return nil, err
	}
	u.Freshness = []Freshness{}
	err = sqldb.Each(ctx, s.db, "SELECT shard, file, pos, gtid, source_ts_ms, applied_at FROM consumer_watermark WHERE kafka_partition = ? ORDER BY shard, topic", func(r *sql.Rows) error {
		var f Freshness
		var at sql.NullTime
		err := r.Scan(&f.Shard, &f.File, &f.Pos, &f.GTID, &f.SourceTimeMs, &at)
		f.AppliedAt = at.Time.UTC().Format(timeFormat)
		u.Freshness = append(u.Freshness, f)
		return err
	}, part)
	return u, err
}

// Sorts are the orders List accepts; a leading "-" reverses one.
var Sorts = map[string]string{"user_id": "user_id", "balance": "balance", "credits": "credits", "debits": "debits", "tx_count": "tx_count"}

// Page is one page of balances.
type Page struct {
	Total    int64         `json:"total"`
	Limit    int           `json:"limit"`
	Offset   int           `json:"offset"`
	Sort     string        `json:"sort"`
	Balances []UserSummary `json:"balances"`
}

// UserSummary is a user's totals in a list.
type UserSummary struct {
	UserID int64 `json:"user_id"`
	Totals
}

// List returns a page of balances in sort order (a key of Sorts, "-" for
// descending), ties broken by user id.
func (s *Store) List(ctx context.Context, limit, offset int, sort string) (*Page, error) {
	col, dir := strings.TrimPrefix(sort, "-"), "ASC"
	if strings.HasPrefix(sort, "-") {
		dir = "DESC"
	}
	col, ok := Sorts[col]
	if !ok {
		return nil, fmt.Errorf("unknown sort %q", sort)
	}
	p := &Page{Limit: limit, Offset: offset, Sort: sort, Balances: []UserSummary{}}
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM balance").Scan(&p.Total); err != nil {
		return nil, err
	}
	order := col + " " + dir
	if col != "user_id" {
		order += ", user_id " + dir
	}
	err := sqldb.Each(ctx, s.db, "SELECT user_id, balance, credits, debits, tx_count FROM balance ORDER BY "+order+" LIMIT ? OFFSET ?", func(r *sql.Rows) error {
		var u UserSummary
		err := r.Scan(&u.UserID, &u.Balance, &u.Credits, &u.Debits, &u.TxCount)
		p.Balances = append(p.Balances, u)
		return err
	}, limit, offset)
	return p, err
}
