// Package store keeps balance_db: per user and per (user, shard) balance,
// credits, debits and transaction count, built from account_transaction
// change events as commutative increments. A batch is one database
// transaction that records every transaction it applies (shard, id) next to
// the increments, so a redelivered change is recognised and skipped, in any
// order and after any restart.
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

// change is one account transaction to add.
type change struct {
	shard, partition int
	id, user         int64
	amount           money.Cents // signed: credits add, debits subtract
	src              cdc.Source
	seq              int64
}

// Store is balance_db.
type Store struct {
	db  *sql.DB
	log *slog.Logger
}

// New returns the store over db (balance_db, migrated).
func New(db *sql.DB, log *slog.Logger) *Store { return &Store{db: db, log: log} }

// decode turns a message into a change, or says why it cannot be applied.
func decode(m kafka.Message) (change, error) {
	e, err := cdc.Decode[txRow](m.Value)
	if err != nil {
		return change{}, err
	}
	if e.Source.Table != "account_transaction" {
		return change{}, fmt.Errorf("a change of table %q, not account_transaction", e.Source.Table)
	}
	if e.Op != cdc.OpCreate && e.Op != cdc.OpRead {
		// The ledger never updates or deletes a transaction (a correction is
		// a new transaction); such a change is a manual edit of the shard,
		// which the reconciliation reports.
		return change{}, fmt.Errorf("op %q on account_transaction: transactions are append-only", e.Op)
	}
	r := e.After
	if r.ID == nil || r.UserID == nil || r.Amount == nil {
		return change{}, fmt.Errorf("account_transaction row without id, user_id or amount")
	}
	c := change{shard: e.Source.Shard, partition: m.Partition, id: *r.ID, user: *r.UserID, src: e.Source}
	switch r.Type {
	case "credit":
		c.amount = *r.Amount
	case "debit":
		c.amount = -*r.Amount
	default:
		return change{}, fmt.Errorf("account_transaction %d: type %q is neither credit nor debit", c.id, r.Type)
	}
	c.seq, _ = e.Source.Seq() // checked by Decode
	return c, nil
}

type txKey struct {
	shard int
	id    int64
}

// Prepare decodes a batch; it runs ahead of the previous batch's apply.
func (s *Store) Prepare(msgs []kafka.Message) any {
	return consume.Decode(msgs, s.log, func(m kafka.Message) (change, txKey, error) {
		c, err := decode(m)
		return c, txKey{c.shard, c.id}, err
	})
}

// ApplyPrepared adds a prepared batch in one transaction. Changes already
// applied (by an earlier delivery or by another consumer of the group) are
// skipped.
func (s *Store) ApplyPrepared(ctx context.Context, b any) (consume.Result, error) {
	return consume.ApplyBatch(ctx, b.(*consume.Batch[change]), s.applyTx)
}

// Apply decodes and applies a batch.
func (s *Store) Apply(ctx context.Context, msgs []kafka.Message) (consume.Result, error) {
	return s.ApplyPrepared(ctx, s.Prepare(msgs))
}

// Stages are the store's consumer stages.
func (s *Store) Stages() consume.Stages {
	return consume.Stages{Prepare: s.Prepare, Apply: s.ApplyPrepared}
}

func (s *Store) applyTx(ctx context.Context, changes []change) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	known, err := s.known(ctx, tx, changes)
	if err != nil {
		return 0, err
	}
	type userShard struct {
		user  int64
		shard int
	}
	type delta struct {
		credits, debits money.Cents
		n, partition    int
	}
	perShard := map[userShard]*delta{}
	perUser := map[int64]*delta{}
	type progKey struct{ shard, partition int }
	progress := map[progKey]change{}
	ins := sqldb.Bulk{Head: "INSERT INTO applied_transaction (shard, id) VALUES ", Cols: 2}
	applied := 0
	for _, c := range changes {
		if p, ok := progress[progKey{c.shard, c.partition}]; !ok || c.seq > p.seq {
			progress[progKey{c.shard, c.partition}] = c
		}
		if known[txKey{c.shard, c.id}] {
			continue
		}
		applied++
		ins.Add(c.shard, c.id)
		for _, d := range []*delta{get(perShard, userShard{c.user, c.shard}), get(perUser, c.user)} {
			if c.amount >= 0 {
				d.credits += c.amount
			} else {
				d.debits -= c.amount
			}
			d.n++
			d.partition = c.partition
		}
	}
	if err := ins.Exec(ctx, tx); err != nil {
		return 0, fmt.Errorf("record applied transactions: %w", err)
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
		return 0, fmt.Errorf("shard balances: %w", err)
	}
	ub := sqldb.Bulk{Head: "INSERT INTO balance (user_id, balance, credits, debits, tx_count, kafka_partition) VALUES ",
		Tail: ` ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance), credits = credits + VALUES(credits),
			debits = debits + VALUES(debits), tx_count = tx_count + VALUES(tx_count), kafka_partition = VALUES(kafka_partition)`, Cols: 6}
	for _, u := range slices.SortedFunc(maps.Keys(perUser), cmp.Compare[int64]) {
		d := perUser[u]
		ub.Add(u, (d.credits - d.debits).String(), d.credits.String(), d.debits.String(), d.n, d.partition)
	}
	if err := ub.Exec(ctx, tx); err != nil {
		return 0, fmt.Errorf("balances: %w", err)
	}
	// Progress moves forward only: columns first, seq last, each compared
	// with the stored seq before it changes.
	pb := sqldb.Bulk{Head: "INSERT INTO progress (shard, kafka_partition, seq, file, pos, gtid, source_ts_ms) VALUES ",
		Tail: ` ON DUPLICATE KEY UPDATE file = IF(VALUES(seq) > seq, VALUES(file), file), pos = IF(VALUES(seq) > seq, VALUES(pos), pos),
			gtid = IF(VALUES(seq) > seq, VALUES(gtid), gtid), source_ts_ms = IF(VALUES(seq) > seq, VALUES(source_ts_ms), source_ts_ms),
			seq = GREATEST(seq, VALUES(seq))`, Cols: 7}
	for _, k := range slices.SortedFunc(maps.Keys(progress), func(a, b progKey) int {
		return cmp.Or(cmp.Compare(a.shard, b.shard), cmp.Compare(a.partition, b.partition))
	}) {
		c := progress[k]
		pb.Add(k.shard, k.partition, c.seq, c.src.File, c.src.Pos, c.src.GTID, c.src.TsMs)
	}
	if err := pb.Exec(ctx, tx); err != nil {
		return 0, fmt.Errorf("progress: %w", err)
	}
	return applied, tx.Commit()
}

// known returns which of the changes' transactions were applied before.
func (s *Store) known(ctx context.Context, tx *sql.Tx, changes []change) (map[txKey]bool, error) {
	byShard := map[int][]int64{}
	for _, c := range changes {
		byShard[c.shard] = append(byShard[c.shard], c.id)
	}
	known := map[txKey]bool{}
	for shard, ids := range byShard {
		scan := func(r *sql.Rows) error {
			var id int64
			if err := r.Scan(&id); err != nil {
				return err
			}
			known[txKey{shard, id}] = true
			return nil
		}
		// A shard's ids grow with its binlog, so a batch's ids are mostly
		// one dense range: one primary-key range scan reads it faster than
		// an IN list, unless the range is much wider than the batch.
		lo, hi := slices.Min(ids), slices.Max(ids)
		var err error
		if hi-lo < int64(4*len(ids)) {
			err = sqldb.Each(ctx, tx, "SELECT id FROM applied_transaction WHERE shard = ? AND id BETWEEN ? AND ?", scan, shard, lo, hi)
		} else {
			err = sqldb.QueryIn(ctx, tx, "SELECT id FROM applied_transaction WHERE id IN (%s) AND shard = ?", ids, scan, shard)
		}
		if err != nil {
			return nil, fmt.Errorf("applied transactions: %w", err)
		}
	}
	return known, nil
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
	err = sqldb.Each(ctx, s.db, "SELECT shard, file, pos, gtid, source_ts_ms, applied_at FROM progress WHERE kafka_partition = ? ORDER BY shard", func(r *sql.Rows) error {
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
