package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// load reads, in bulk, every row the batch's rules may look at.
func (s *state) load(ctx context.Context, tx *sql.Tx, evs []event.Prepared) error {
	keys, orderIDs, purchaseOrders := set[string]{}, set[int64]{}, set[int64]{}
	for _, e := range evs {
		keys.add(e.Key)
		if e.Reject != "" {
			continue
		}
		switch e.Type {
		case event.Purchase:
			orderIDs.add(e.OrderID)
			purchaseOrders.add(e.OrderID)
		case event.Return:
			orderIDs.add(e.OrderID)
		}
	}
	err := sqldb.QueryIn(ctx, tx, "SELECT event_key FROM events WHERE event_key IN (%s) AND status <> 'duplicate'", keys.list(), func(r *sql.Rows) error {
		var k string
		if err := r.Scan(&k); err != nil {
			return err
		}
		s.seen[k] = true
		return nil
	})
	if err != nil {
		return err
	}
	err = sqldb.QueryIn(ctx, tx, `SELECT order_id, user_id, good_id, shop_id, qty, price_at_order, returned_qty, refunded
		FROM purchase_history WHERE order_id IN (%s)`, orderIDs.list(), func(r *sql.Rows) error {
		var id int64
		o := &orderRow{exists: true}
		if err := r.Scan(&id, &o.userID, &o.goodID, &o.shopID, &o.qty, &o.price, &o.returned, &o.refunded); err != nil {
			return err
		}
		s.orders[id] = o
		return nil
	})
	if err != nil {
		return err
	}
	err = sqldb.QueryIn(ctx, tx, `SELECT detail FROM pending_return WHERE order_id IN (%s)
		ORDER BY pending_until, source_file, source_line`, purchaseOrders.list(), func(r *sql.Rows) error {
		ref := pendingRef{stored: true}
		var detail []byte
		if err := r.Scan(&detail); err != nil {
			return err
		}
		if err := json.Unmarshal(detail, &ref.ev); err != nil {
			return fmt.Errorf("pending return: %w", err)
		}
		s.pending[ref.ev.OrderID] = append(s.pending[ref.ev.OrderID], ref)
		return nil
	})
	if err != nil {
		return err
	}
	userIDs, stockKeys, shopIDs := set[int64]{}, map[stockKey]bool{}, set[int64]{}
	addEvent := func(e event.Prepared) {
		switch e.Type {
		case event.Purchase:
			userIDs.add(e.UserID)
			stockKeys[stockKey{e.ShopID, e.GoodID}] = true
			shopIDs.add(e.ShopID)
		case event.Return:
			userIDs.add(e.UserID)
			if o := s.orders[e.OrderID]; o != nil {
				stockKeys[stockKey{o.shopID, o.goodID}] = true
			}
		case event.StockChange, event.PriceChange:
			stockKeys[stockKey{e.ShopID, e.GoodID}] = true
			shopIDs.add(e.ShopID)
		case event.ShopStatus:
			shopIDs.add(e.ShopID)
		}
	}
	for _, e := range evs {
		if e.Reject == "" {
			addEvent(e)
		}
	}
	for _, refs := range s.pending {
		for _, ref := range refs {
			addEvent(ref.ev)
		}
	}
	err = sqldb.QueryIn(ctx, tx, "SELECT id, balance FROM user WHERE id IN (%s)", userIDs.list(), func(r *sql.Rows) error {
		var id int64
		u := &userRow{exists: true}
		if err := r.Scan(&id, &u.balance); err != nil {
			return err
		}
		s.users[id] = u
		return nil
	})
	if err != nil {
		return err
	}
	err = sqldb.QueryIn(ctx, tx, "SELECT shop_id, active FROM shop_state WHERE shop_id IN (%s)", shopIDs.list(), func(r *sql.Rows) error {
		var id int64
		sh := &shopRow{}
		if err := r.Scan(&id, &sh.active); err != nil {
			return err
		}
		s.shops[id] = sh
		return nil
	})
	if err != nil {
		return err
	}
	// Stock rows, by shop, keeping only the pairs asked for.
	shopsOfStock := set[int64]{}
	for k := range stockKeys {
		shopsOfStock.add(k.shop)
	}
	return sqldb.QueryIn(ctx, tx, "SELECT id, good_id, count, price FROM shop WHERE id IN (%s)", shopsOfStock.list(), func(r *sql.Rows) error {
		var k stockKey
		row := &stockRow{exists: true}
		if err := r.Scan(&k.shop, &k.good, &row.count, &row.price); err != nil {
			return err
		}
		if stockKeys[k] {
			s.stock[k] = row
		}
		return nil
	})
}
