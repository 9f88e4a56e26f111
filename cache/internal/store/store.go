// Package store keeps cache_db: per shop the stock and price of every good,
// open or closed, and counters of its events rows by type and status
// (pending included), built from the shards' shop, shop_state and events
// changes. Stock and counters are commutative increments; price and
// open/closed keep the value of the latest change by source position
// (epoch first). It is a consume.Handler: the consumer loop decodes, dedupes
// (per shard and partition, see package consume) and calls Apply in the
// batch's transaction; a newer snapshot of a shard first Resets everything
// the shard contributed.
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

// Tables are the shard tables the cache consumes.
var Tables = []string{"shop", "shop_state", "events"}

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

// flexBool reads a BOOLEAN column as Debezium renders it (true/false) or as
// older producers did (0/1).
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

// Change is one decoded change event.
type Change struct {
	env     cdc.Envelope[row]
	version string // cdc.Position.Version, for last-writer-wins values
}

// Source is where the change comes from (for freshness).
func (c *Change) Source() cdc.Source { return c.env.Source }

// Decode turns a message into a change, or says why it cannot be applied.
func (s *Store) Decode(m kafka.Message) (*Change, cdc.Position, error) {
	e, err := cdc.Decode[row](m.Value)
	if err != nil {
		return nil, cdc.Position{}, err
	}
	if !slices.Contains(Tables, e.Source.Table) {
		return nil, cdc.Position{}, fmt.Errorf("%w: %q", consume.ErrUnknownTable, e.Source.Table)
	}
	pos, err := e.Source.Position(e.Op)
	if err != nil {
		return nil, cdc.Position{}, err
	}
	for _, r := range []*row{e.Before, e.After} {
		if r == nil {
			continue
		}
		switch e.Source.Table {
		case "shop":
			if r.ID == nil || r.GoodID == nil || r.Count == nil {
				return nil, pos, errors.New("shop row without id, good_id or count")
			}
		case "shop_state":
			if r.ShopID == nil || r.Active == nil {
				return nil, pos, errors.New("shop_state row without shop_id or active")
			}
			if e.Op == cdc.OpDelete {
				return nil, pos, errors.New("delete of a shop_state row: shops are never removed")
			}
		case "events":
			if r.EventType == nil || r.Status == "" {
				return nil, pos, errors.New("events row without event_type or status")
			}
		}
	}
	return &Change{env: e, version: pos.Version()}, pos, nil
}

// Store is cache_db.
type Store struct {
	db  *sql.DB
	log *slog.Logger
}

// New returns the store over db (cache_db, migrated).
func New(db *sql.DB, log *slog.Logger) *Store { return &Store{db: db, log: log} }

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

// newer reports whether version a (cdc.Position.Version) is after b; "-1"
// is before all.
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

// Apply adds new changes to the state in tx.
func (s *Store) Apply(ctx context.Context, tx *sql.Tx, changes []*Change) error {
	stock := map[stockKey]*stockDelta{}
	status := map[int64]*statusVal{}
	counts := map[counterKey]int64{}
	for _, c := range changes {
		src := c.env.Source
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
		return fmt.Errorf("stock: %w", err)
	}
	st := sqldb.Bulk{Head: "INSERT INTO shop_status (shop_id, shard, active, active_version) VALUES ",
		Tail: ` ON DUPLICATE KEY UPDATE active = IF(VALUES(active_version) > active_version, VALUES(active), active),
			shard = IF(VALUES(active_version) > active_version, VALUES(shard), shard),
			active_version = GREATEST(active_version, VALUES(active_version))`, Cols: 4}
	for _, shop := range slices.Sorted(maps.Keys(status)) {
		v := status[shop]
		st.Add(shop, v.shard, v.active, v.version)
	}
	if err := st.Exec(ctx, tx); err != nil {
		return fmt.Errorf("shop status: %w", err)
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
		return fmt.Errorf("event counts: %w", err)
	}
	return nil
}

// Reset removes everything shard contributed in tx, before a newer snapshot
// of the shard rebuilds it.
func (s *Store) Reset(ctx context.Context, tx *sql.Tx, shard int) error {
	for _, table := range []string{"stock", "shop_status", "event_count"} {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE shard = ?", shard); err != nil {
			return fmt.Errorf("reset %s of shard %d: %w", table, shard, err)
		}
	}
	return nil
}

// Clear empties every shop's state in tx, before a rebuild applies every
// change again.
func (s *Store) Clear(ctx context.Context, tx *sql.Tx) error {
	for _, table := range []string{"stock", "shop_status", "event_count"} {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+table); err != nil {
			return fmt.Errorf("empty %s: %w", table, err)
		}
	}
	return nil
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
