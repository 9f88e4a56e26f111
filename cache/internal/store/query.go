package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/shopledger/shopledger/internal/money"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// ErrNotFound is returned for a shop or good no change was seen for.
var ErrNotFound = errors.New("not found")

// EventTypes names the event types of SPEC §2 in the counters.
var EventTypes = map[int]string{0: "stock_change", 1: "purchase", 2: "price_change", 3: "return", 4: "shop_status"}

// Counters count events rows: by type name and status (applied, rejected,
// duplicate, pending), and the totals users ask for most.
type Counters struct {
	ByType    map[string]map[string]int64 `json:"by_type"`
	Events    int64                       `json:"events"`
	Purchases int64                       `json:"purchases"` // applied purchases
	Returns   int64                       `json:"returns"`   // applied returns
	Rejected  int64                       `json:"rejected"`
	Pending   int64                       `json:"pending"` // returns held for their purchase
}

func newCounters() *Counters { return &Counters{ByType: map[string]map[string]int64{}} }

func (c *Counters) add(eventType int, status string, n int64) {
	name, ok := EventTypes[eventType]
	if !ok {
		name = strconv.Itoa(eventType)
	}
	if c.ByType[name] == nil {
		c.ByType[name] = map[string]int64{}
	}
	c.ByType[name][status] += n
	c.Events += n
	switch {
	case status == "rejected":
		c.Rejected += n
	case status == "pending":
		c.Pending += n
	case status == "applied" && eventType == 1:
		c.Purchases += n
	case status == "applied" && eventType == 3:
		c.Returns += n
	}
}

// Good is a good's stock and price in a shop.
type Good struct {
	ShopID int64        `json:"shop_id,omitempty"`
	GoodID int64        `json:"good_id"`
	Count  int64        `json:"count"`
	Price  *money.Cents `json:"price"` // null until a change carried one
}

// Progress is how far one shard's changes on one topic partition are
// applied: the furthest source position, its commit time on the shard.
type Progress struct {
	Shard        int    `json:"shard"`
	Topic        string `json:"topic"`
	Partition    int    `json:"partition"`
	File         string `json:"file"`
	Pos          int64  `json:"pos"`
	SourceTimeMs int64  `json:"source_ts_ms"`
	AppliedAt    string `json:"applied_at"`
}

// Shop is what the cache knows of a shop.
type Shop struct {
	ShopID     int64      `json:"shop_id"`
	Shard      *int       `json:"shard"`
	Active     *bool      `json:"active"` // null until an open/close change was seen
	StockTotal int64      `json:"stock_total"`
	Goods      []Good     `json:"goods"`
	Counters   *Counters  `json:"counters"`
	Freshness  []Progress `json:"freshness"`
}

// Shop returns one shop, or ErrNotFound.
func (s *Store) Shop(ctx context.Context, id int64) (*Shop, error) {
	sh := &Shop{ShopID: id, Goods: []Good{}, Counters: newCounters()}
	var shard int
	var active bool
	err := s.db.QueryRowContext(ctx, "SELECT shard, active FROM shop_status WHERE shop_id = ?", id).Scan(&shard, &active)
	switch {
	case err == nil:
		sh.Shard, sh.Active = &shard, &active
	case !errors.Is(err, sql.ErrNoRows):
		return nil, err
	}
	err = sqldb.Each(ctx, s.db, "SELECT good_id, shard, count, price FROM stock WHERE shop_id = ? ORDER BY good_id", func(r *sql.Rows) error {
		var g Good
		var price sql.Null[money.Cents]
		if err := r.Scan(&g.GoodID, &shard, &g.Count, &price); err != nil {
			return err
		}
		if price.Valid {
			g.Price = &price.V
		}
		sh.Goods = append(sh.Goods, g)
		sh.StockTotal += g.Count
		if sh.Shard == nil {
			sh.Shard = &shard
		}
		return nil
	}, id)
	if err != nil {
		return nil, err
	}
	err = sqldb.Each(ctx, s.db, "SELECT shard, event_type, status, n FROM event_count WHERE shop_id = ?", func(r *sql.Rows) error {
		var t int
		var st string
		var n int64
		if err := r.Scan(&shard, &t, &st, &n); err != nil {
			return err
		}
		sh.Counters.add(t, st, n)
		if sh.Shard == nil {
			sh.Shard = &shard
		}
		return nil
	}, id)
	if err != nil {
		return nil, err
	}
	if sh.Shard == nil {
		return nil, ErrNotFound
	}
	sh.Freshness, err = s.progress(ctx, *sh.Shard)
	return sh, err
}

func (s *Store) progress(ctx context.Context, shard int) ([]Progress, error) {
	out := []Progress{}
	err := sqldb.Each(ctx, s.db, "SELECT shard, topic, kafka_partition, file, pos, source_ts_ms, applied_at FROM consumer_watermark WHERE shard = ? ORDER BY topic, kafka_partition",
		func(r *sql.Rows) error {
			var p Progress
			var at sql.NullTime
			if err := r.Scan(&p.Shard, &p.Topic, &p.Partition, &p.File, &p.Pos, &p.SourceTimeMs, &at); err != nil {
				return err
			}
			p.AppliedAt = at.Time.UTC().Format("2006-01-02T15:04:05.000Z")
			out = append(out, p)
			return nil
		}, shard)
	return out, err
}

// Good returns a good of a shop, or ErrNotFound.
func (s *Store) Good(ctx context.Context, shop, good int64) (*Good, error) {
	g := &Good{ShopID: shop, GoodID: good}
	var price sql.Null[money.Cents]
	err := s.db.QueryRowContext(ctx, "SELECT count, price FROM stock WHERE shop_id = ? AND good_id = ?", shop, good).Scan(&g.Count, &price)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if price.Valid {
		g.Price = &price.V
	}
	return g, nil
}

// PendingShop is the pending counter of a shop on a shard.
type PendingShop struct {
	ShopID  *int64 `json:"shop_id"` // null: returns whose shop is not known
	Shard   int    `json:"shard"`
	Pending int64  `json:"pending"`
}

// Pending lists the shops with pending returns, and their total.
type Pending struct {
	Total int64         `json:"total"`
	Shops []PendingShop `json:"shops"`
}

// Pending returns every non-zero pending counter per shop and shard.
func (s *Store) Pending(ctx context.Context) (*Pending, error) {
	p := &Pending{Shops: []PendingShop{}}
	err := sqldb.Each(ctx, s.db, `SELECT shop_id, shard, SUM(n) FROM event_count WHERE status = 'pending'
		GROUP BY shop_id, shard HAVING SUM(n) <> 0 ORDER BY shop_id, shard`, func(r *sql.Rows) error {
		var e PendingShop
		var shop int64
		if err := r.Scan(&shop, &e.Shard, &e.Pending); err != nil {
			return err
		}
		if shop != NoShop {
			e.ShopID = &shop
		}
		p.Total += e.Pending
		p.Shops = append(p.Shops, e)
		return nil
	})
	return p, err
}

// ShardCounters are one shard's counters.
type ShardCounters struct {
	Shard int `json:"shard"`
	*Counters
}

// AllCounters are the counters over every shop, in total and per shard.
type AllCounters struct {
	Total  *Counters       `json:"total"`
	Shards []ShardCounters `json:"shards"`
}

// Counters sums the counters of every shop.
func (s *Store) Counters(ctx context.Context) (*AllCounters, error) {
	all := &AllCounters{Total: newCounters(), Shards: []ShardCounters{}}
	per := map[int]*Counters{}
	err := sqldb.Each(ctx, s.db, "SELECT shard, event_type, status, SUM(n) FROM event_count GROUP BY shard, event_type, status", func(r *sql.Rows) error {
		var shard, t int
		var st string
		var n int64
		if err := r.Scan(&shard, &t, &st, &n); err != nil {
			return err
		}
		all.Total.add(t, st, n)
		if per[shard] == nil {
			per[shard] = newCounters()
		}
		per[shard].add(t, st, n)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for shard, c := range per {
		all.Shards = append(all.Shards, ShardCounters{shard, c})
	}
	slices.SortFunc(all.Shards, func(a, b ShardCounters) int { return a.Shard - b.Shard })
	return all, nil
}

// Reconcile compares cache_db with the shards' truth: every shop row's
// stock and price, every shop's open/closed, the events rows per shop, type
// and status, and the pending_return rows per shop. It returns one line per
// difference.
func (s *Store) Reconcile(ctx context.Context, shards []*sql.DB) ([]string, error) {
	var diffs []string
	for i, db := range shards {
		d, err := s.reconcileShard(ctx, i, db)
		if err != nil {
			return nil, fmt.Errorf("shard %d: %w", i, err)
		}
		diffs = append(diffs, d...)
	}
	slices.Sort(diffs)
	return diffs, nil
}

// keyed holds a check's rows: a key and a value, both as text.
type keyed map[string]string

// load runs a query returning (key, value) rows.
func load(ctx context.Context, db *sql.DB, query string, args ...any) (keyed, error) {
	out := keyed{}
	err := sqldb.Each(ctx, db, query, func(r *sql.Rows) error {
		var k, v string
		if err := r.Scan(&k, &v); err != nil {
			return err
		}
		out[k] = v
		return nil
	}, args...)
	return out, err
}

func (s *Store) reconcileShard(ctx context.Context, shard int, db *sql.DB) ([]string, error) {
	checks := []struct {
		what, truth, cache string
		zero               string // a cache value that stands for "absent"
	}{
		{"stock of shop/good", "SELECT CONCAT(id, '/', good_id), CONCAT(count, ' at ', price) FROM shop",
			"SELECT CONCAT(shop_id, '/', good_id), CONCAT(count, ' at ', IFNULL(price, 'no price')) FROM stock WHERE shard = ?", "0 at no price"},
		{"open (1) or closed (0) of shop", "SELECT shop_id, active + 0 FROM shop_state",
			"SELECT shop_id, active + 0 FROM shop_status WHERE shard = ?", ""},
		{"events rows of shop/type/status", "SELECT CONCAT(IFNULL(shop_id, -1), '/', event_type, '/', status), COUNT(*) FROM events GROUP BY 1",
			"SELECT CONCAT(shop_id, '/', event_type, '/', status), n FROM event_count WHERE shard = ?", "0"},
		{"pending returns of shop", "SELECT IFNULL(shop_id, -1), COUNT(*) FROM pending_return GROUP BY 1",
			"SELECT shop_id, SUM(n) FROM event_count WHERE shard = ? AND status = 'pending' GROUP BY shop_id", "0"},
	}
	var diffs []string
	for _, c := range checks {
		truth, err := load(ctx, db, c.truth)
		if err != nil {
			return nil, err
		}
		have, err := load(ctx, s.db, c.cache, shard)
		if err != nil {
			return nil, fmt.Errorf("cache_db: %w", err)
		}
		for k, v := range truth {
			if have[k] != v {
				diffs = append(diffs, fmt.Sprintf("shard %d: %s %s: cache_db has %q, the shard has %q", shard, c.what, k, have[k], v))
			}
		}
		for k, v := range have {
			if _, ok := truth[k]; !ok && v != c.zero {
				diffs = append(diffs, fmt.Sprintf("shard %d: %s %s: cache_db has %q, the shard has none", shard, c.what, k, v))
			}
		}
	}
	return diffs, nil
}
