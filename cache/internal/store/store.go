// Package store keeps cache_db: per shop the stock and price of every good,
// open or closed, and counters of its events rows by type and status
// (pending included), built from the shards' shop, shop_state and events
// changes. Stock and counters are commutative increments; price and
// open/closed keep the value of the latest change by source position. A
// batch is one database transaction that records the identity of every
// change it applies, so redelivery in any order changes nothing.
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

// Tables are the shard tables the cache consumes, with their codes in
// applied_change.
var Tables = map[string]int{"shop": 1, "shop_state": 2, "events": 3}

// NoShop is the shop_id under which events without a shop are counted.
const NoShop = -1

// row is the union of the columns the cache reads from its three tables.
type row struct {
	ID        *int64       `json:"id"`      // shop.id is the shop
	GoodID    *int64       `json:"good_id"` // shop
	Count     *int64       `json:"count"`   // shop
	Price     *money.Cents `json:"price"`   // shop
	ShopID    *int64       `json:"shop_id"` // shop_state, events
	Active    *flexBool    `json:"active"`  // shop_state
	EventType *int         `json:"event_type"`
	Status    string       `json:"status"`
}

// flexBool reads a BOOLEAN column as the binlog gives it (0/1) or as JSON
// true/false.
type flexBool bool

func (b *flexBool) UnmarshalJSON(d []byte) error {
	switch string(d) {
	case "1", "true":
		*b = true
	case "0", "false":
		*b = false
	default:
		return fmt.Errorf("not a boolean: %s", d)
	}
	return nil
}

// change is one decoded change event.
type change struct {
	env       cdc.Envelope[row]
	tbl       int
	seq       int64
	version   string
	partition int
	topic     string
}

type changeKey struct {
	shard, tbl int
	seq        int64
	row        int
}

func (c *change) key() changeKey {
	return changeKey{c.env.Source.Shard, c.tbl, c.seq, c.env.Source.Row}
}

func decode(m kafka.Message) (*change, error) {
	e, err := cdc.Decode[row](m.Value)
	if err != nil {
		return nil, err
	}
	tbl, ok := Tables[e.Source.Table]
	if !ok {
		return nil, fmt.Errorf("a change of table %q, which the cache does not consume", e.Source.Table)
	}
	c := &change{env: e, tbl: tbl, partition: m.Partition, topic: m.Topic}
	c.seq, _ = e.Source.Seq() // checked by Decode
	if c.version, err = e.Source.RowVersion(); err != nil {
		return nil, err
	}
	for _, r := range []*row{e.Before, e.After} {
		if r == nil {
			continue
		}
		switch e.Source.Table {
		case "shop":
			if r.ID == nil || r.GoodID == nil || r.Count == nil {
				return nil, errors.New("shop row without id, good_id or count")
			}
		case "shop_state":
			if r.ShopID == nil || r.Active == nil {
				return nil, errors.New("shop_state row without shop_id or active")
			}
			if e.Op == cdc.OpDelete {
				return nil, errors.New("delete of a shop_state row: shops are never removed")
			}
		case "events":
			if r.EventType == nil || r.Status == "" {
				return nil, errors.New("events row without event_type or status")
			}
		}
	}
	return c, nil
}

// Store is cache_db.
type Store struct {
	db  *sql.DB
	log *slog.Logger
}

// New returns the store over db (cache_db, migrated).
func New(db *sql.DB, log *slog.Logger) *Store { return &Store{db: db, log: log} }

// Prepare decodes a batch; it runs ahead of the previous batch's apply.
func (s *Store) Prepare(msgs []kafka.Message) any {
	return consume.Decode(msgs, s.log, func(m kafka.Message) (*change, changeKey, error) {
		c, err := decode(m)
		if err != nil {
			return nil, changeKey{}, err
		}
		return c, c.key(), nil
	})
}

// ApplyPrepared applies a prepared batch in one transaction, skipping the
// changes applied before.
func (s *Store) ApplyPrepared(ctx context.Context, b any) (consume.Result, error) {
	return consume.ApplyBatch(ctx, b.(*consume.Batch[*change]), s.applyTx)
}

// Apply decodes and applies a batch.
func (s *Store) Apply(ctx context.Context, msgs []kafka.Message) (consume.Result, error) {
	return s.ApplyPrepared(ctx, s.Prepare(msgs))
}

// Stages are the store's consumer stages.
func (s *Store) Stages() consume.Stages {
	return consume.Stages{Prepare: s.Prepare, Apply: s.ApplyPrepared}
}

type stockKey struct{ shop, good int64 }

type stockDelta struct {
	shard   int
	count   int64
	price   *money.Cents
	version string // of price; "-1" when the batch has no price for it
}

type statusVal struct {
	shard   int
	active  bool
	version string
}

type counterKey struct {
	shop      int64
	shard     int
	eventType int
	status    string
}

type progressKey struct {
	shard     int
	topic     string
	partition int
}

// newer reports whether RowVersion a is after b; "-1" is before all.
// Versions are decimals without leading zeros: longer is larger.
func newer(a, b string) bool {
	switch {
	case a == "-1":
		return false
	case b == "-1":
		return true
	case len(a) != len(b):
		return len(a) > len(b)
	}
	return a > b
}

func (s *Store) applyTx(ctx context.Context, changes []*change) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	known, err := s.known(ctx, tx, changes)
	if err != nil {
		return 0, err
	}
	stock := map[stockKey]*stockDelta{}
	status := map[int64]*statusVal{}
	counts := map[counterKey]int64{}
	progress := map[progressKey]*change{}
	ins := sqldb.Bulk{Head: "INSERT INTO applied_change (shard, tbl, seq, row_no) VALUES ", Cols: 4}
	applied := 0
	for _, c := range changes {
		src := c.env.Source
		pk := progressKey{src.Shard, c.topic, c.partition}
		if p := progress[pk]; p == nil || c.seq > p.seq {
			progress[pk] = c
		}
		if known[c.key()] {
			continue
		}
		applied++
		ins.Add(src.Shard, c.tbl, c.seq, src.Row)
		b, a := c.env.Before, c.env.After
		switch src.Table {
		case "shop":
			if b != nil {
				d := getStock(stock, stockKey{*b.ID, *b.GoodID}, src.Shard)
				d.count -= *b.Count
			}
			if a != nil {
				d := getStock(stock, stockKey{*a.ID, *a.GoodID}, src.Shard)
				d.count += *a.Count
				if a.Price != nil && newer(c.version, d.version) {
					d.price, d.version = a.Price, c.version
				}
			}
		case "shop_state":
			if v := status[*a.ShopID]; v == nil || newer(c.version, v.version) {
				status[*a.ShopID] = &statusVal{shard: src.Shard, active: bool(*a.Active), version: c.version}
			}
		case "events":
			if b != nil {
				counts[counterOf(b, src.Shard)]--
			}
			if a != nil {
				counts[counterOf(a, src.Shard)]++
			}
		}
	}
	if err := ins.Exec(ctx, tx); err != nil {
		return 0, fmt.Errorf("record applied changes: %w", err)
	}
	// Upserts in key order, so that concurrent batches lock rows in one order.
	sb := sqldb.Bulk{Head: "INSERT INTO stock (shop_id, good_id, shard, count, price, price_version) VALUES ",
		Tail: ` ON DUPLICATE KEY UPDATE count = count + VALUES(count),
			price = IF(VALUES(price_version) > price_version, VALUES(price), price),
			price_version = GREATEST(price_version, VALUES(price_version)), shard = VALUES(shard)`, Cols: 6}
	for _, k := range slices.SortedFunc(maps.Keys(stock), func(a, b stockKey) int { return cmp.Or(cmp.Compare(a.shop, b.shop), cmp.Compare(a.good, b.good)) }) {
		d := stock[k]
		var price any
		if d.price != nil {
			price = d.price.String()
		}
		sb.Add(k.shop, k.good, d.shard, d.count, price, d.version)
	}
	if err := sb.Exec(ctx, tx); err != nil {
		return 0, fmt.Errorf("stock: %w", err)
	}
	st := sqldb.Bulk{Head: "INSERT INTO shop_status (shop_id, shard, active, active_version) VALUES ",
		Tail: ` ON DUPLICATE KEY UPDATE active = IF(VALUES(active_version) > active_version, VALUES(active), active),
			shard = IF(VALUES(active_version) > active_version, VALUES(shard), shard),
			active_version = GREATEST(active_version, VALUES(active_version))`, Cols: 4}
	for _, shop := range slices.SortedFunc(maps.Keys(status), cmp.Compare[int64]) {
		v := status[shop]
		st.Add(shop, v.shard, v.active, v.version)
	}
	if err := st.Exec(ctx, tx); err != nil {
		return 0, fmt.Errorf("shop status: %w", err)
	}
	cb := sqldb.Bulk{Head: "INSERT INTO event_count (shop_id, shard, event_type, status, n) VALUES ",
		Tail: " ON DUPLICATE KEY UPDATE n = n + VALUES(n)", Cols: 5}
	for _, k := range slices.SortedFunc(maps.Keys(counts), func(a, b counterKey) int {
		return cmp.Or(cmp.Compare(a.shop, b.shop), cmp.Compare(a.shard, b.shard), cmp.Compare(a.eventType, b.eventType), strings.Compare(a.status, b.status))
	}) {
		if n := counts[k]; n != 0 {
			cb.Add(k.shop, k.shard, k.eventType, k.status, n)
		}
	}
	if err := cb.Exec(ctx, tx); err != nil {
		return 0, fmt.Errorf("event counts: %w", err)
	}
	pb := sqldb.Bulk{Head: "INSERT INTO progress (shard, topic, kafka_partition, seq, file, pos, source_ts_ms) VALUES ",
		Tail: ` ON DUPLICATE KEY UPDATE file = IF(VALUES(seq) > seq, VALUES(file), file), pos = IF(VALUES(seq) > seq, VALUES(pos), pos),
			source_ts_ms = IF(VALUES(seq) > seq, VALUES(source_ts_ms), source_ts_ms), seq = GREATEST(seq, VALUES(seq))`, Cols: 7}
	for _, k := range slices.SortedFunc(maps.Keys(progress), func(a, b progressKey) int {
		return cmp.Or(cmp.Compare(a.shard, b.shard), strings.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	}) {
		c := progress[k]
		pb.Add(k.shard, k.topic, k.partition, c.seq, c.env.Source.File, c.env.Source.Pos, c.env.Source.TsMs)
	}
	if err := pb.Exec(ctx, tx); err != nil {
		return 0, fmt.Errorf("progress: %w", err)
	}
	return applied, tx.Commit()
}

func counterOf(r *row, shard int) counterKey {
	k := counterKey{shop: NoShop, shard: shard, eventType: *r.EventType, status: r.Status}
	if r.ShopID != nil {
		k.shop = *r.ShopID
	}
	return k
}

func getStock(m map[stockKey]*stockDelta, k stockKey, shard int) *stockDelta {
	d := m[k]
	if d == nil {
		d = &stockDelta{shard: shard, version: "-1"}
		m[k] = d
	}
	return d
}

// known returns which changes were applied before.
func (s *Store) known(ctx context.Context, tx *sql.Tx, changes []*change) (map[changeKey]bool, error) {
	known := map[changeKey]bool{}
	keys := make([]string, len(changes))
	for i, c := range changes {
		k := c.key()
		// Literal integers: a row-constructor IN list of numbers is safe to
		// inline and lets the server use the primary key for it.
		keys[i] = fmt.Sprintf("(%d,%d,%d,%d)", k.shard, k.tbl, k.seq, k.row)
	}
	for start := 0; start < len(keys); start += sqldb.MaxRows {
		end := min(start+sqldb.MaxRows, len(keys))
		err := sqldb.Each(ctx, tx, "SELECT shard, tbl, seq, row_no FROM applied_change WHERE (shard, tbl, seq, row_no) IN ("+strings.Join(keys[start:end], ",")+")",
			func(r *sql.Rows) error {
				var k changeKey
				if err := r.Scan(&k.shard, &k.tbl, &k.seq, &k.row); err != nil {
					return err
				}
				known[k] = true
				return nil
			})
		if err != nil {
			return nil, fmt.Errorf("applied changes: %w", err)
		}
	}
	return known, nil
}
