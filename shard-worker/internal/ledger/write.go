package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// write stores the batch's results. Rows new to the shard are inserted
// (with LOAD DATA LOCAL INFILE when load is set, see sqldb.Rows); rows it
// already has are updated with multi-row upserts.
func (s *state) write(ctx context.Context, tx *sql.Tx, load bool) error {
	if len(s.goods) > 0 {
		// Not INSERT IGNORE, which would also turn a bad value into a warning.
		g := sqldb.Bulk{Head: "INSERT INTO good (id, name, price) VALUES ", Tail: " ON DUPLICATE KEY UPDATE id = id", Cols: 3}
		for _, id := range sortedKeys(s.goods) {
			g.Add(id, "good-"+strconv.FormatInt(id, 10), s.goods[id].String())
		}
		if err := g.Exec(ctx, tx); err != nil {
			return fmt.Errorf("goods: %w", err)
		}
	}
	newUsers := sqldb.Rows{Table: "user", Columns: []string{"id", "name", "balance"}}
	users := sqldb.Bulk{Head: "INSERT INTO user (id, name, balance) VALUES ", Tail: " ON DUPLICATE KEY UPDATE balance = VALUES(balance)", Cols: 3}
	for _, id := range sortedKeys(s.users) {
		switch u := s.users[id]; {
		case u.dirty && u.exists:
			users.Add(id, "user-"+strconv.FormatInt(id, 10), u.balance.String())
		case u.dirty:
			newUsers.Add(id, "user-"+strconv.FormatInt(id, 10), u.balance)
		}
	}
	if err := newUsers.Insert(ctx, tx, load); err != nil {
		return fmt.Errorf("new users: %w", err)
	}
	if err := users.Exec(ctx, tx); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	txs := sqldb.Rows{Table: "account_transaction", Columns: []string{"user_id", "amount", "type", "reason", "idempotency_key"}}
	for _, t := range s.txs {
		txs.Add(t.user, t.amount, t.typ, t.reason, t.key)
	}
	if err := txs.Insert(ctx, tx, load); err != nil {
		return fmt.Errorf("account transactions: %w", err)
	}
	if err := s.writeShops(ctx, tx, load); err != nil {
		return err
	}
	newOrders := sqldb.Rows{Table: "purchase_history",
		Columns: []string{"order_id", "user_id", "good_id", "shop_id", "qty", "price_at_order", "returned_qty", "refunded"}}
	orders := sqldb.Bulk{Head: "INSERT INTO purchase_history (order_id, user_id, good_id, shop_id, qty, price_at_order, returned_qty, refunded) VALUES ",
		Tail: " ON DUPLICATE KEY UPDATE returned_qty = VALUES(returned_qty), refunded = VALUES(refunded)", Cols: 8}
	for _, id := range sortedKeys(s.orders) {
		switch o := s.orders[id]; {
		case o.dirty && o.exists:
			orders.Add(id, o.userID, o.goodID, o.shopID, o.qty, o.price.String(), o.returned, o.refunded.String())
		case o.dirty:
			newOrders.Add(id, o.userID, o.goodID, o.shopID, o.qty, o.price, o.returned, o.refunded)
		}
	}
	if err := newOrders.Insert(ctx, tx, load); err != nil {
		return fmt.Errorf("new purchases: %w", err)
	}
	if err := orders.Exec(ctx, tx); err != nil {
		return fmt.Errorf("purchases: %w", err)
	}
	returns := sqldb.Rows{Table: "order_return", Columns: []string{"order_id", "qty", "amount", "event_key"}}
	for _, r := range s.returns {
		returns.Add(r.order, r.qty, r.amount, r.key)
	}
	if err := returns.Insert(ctx, tx, load); err != nil {
		return fmt.Errorf("returns: %w", err)
	}
	if err := s.writeEvents(ctx, tx, load); err != nil {
		return err
	}
	for _, u := range s.settled {
		src := u.ev.Src
		res, err := tx.ExecContext(ctx, "UPDATE events SET status = ?, reason = ? WHERE source_file = ? AND source_line = ? AND status = 'pending'",
			u.status, nullString(sqldb.Text(u.reason, 255)), src.File, src.Line)
		if err != nil {
			return fmt.Errorf("settle pending return %s:%d: %w", src.File, src.Line, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("settle pending return %s:%d: its events row is not pending", src.File, src.Line)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM pending_return WHERE source_file = ? AND source_line = ?", src.File, src.Line); err != nil {
			return fmt.Errorf("settle pending return %s:%d: %w", src.File, src.Line, err)
		}
	}
	return writeOutbox(ctx, tx, s.outbox, load)
}

// writeShops stores opened and closed shops and the stock rows.
func (s *state) writeShops(ctx context.Context, tx *sql.Tx, load bool) error {
	states := sqldb.Bulk{Head: "INSERT INTO shop_state (shop_id, active) VALUES ", Tail: " ON DUPLICATE KEY UPDATE active = VALUES(active)", Cols: 2}
	var opened, closed []int64
	for _, id := range sortedKeys(s.shops) {
		if sh := s.shops[id]; sh.changed {
			states.Add(id, sh.active)
			if sh.active {
				opened = append(opened, id)
			} else {
				closed = append(closed, id)
			}
		}
	}
	if err := states.Exec(ctx, tx); err != nil {
		return fmt.Errorf("shop states: %w", err)
	}
	// A shop's goods follow its state: one statement per state, not per shop.
	if err := sqldb.ExecIn(ctx, tx, "UPDATE shop SET active = TRUE WHERE id IN (%s)", opened); err != nil {
		return fmt.Errorf("open shops: %w", err)
	}
	if err := sqldb.ExecIn(ctx, tx, "UPDATE shop SET active = FALSE WHERE id IN (%s)", closed); err != nil {
		return fmt.Errorf("close shops: %w", err)
	}
	keys := make([]stockKey, 0, len(s.stock))
	for k, row := range s.stock {
		if row.dirty {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].shop < keys[j].shop || keys[i].shop == keys[j].shop && keys[i].good < keys[j].good
	})
	newStock := sqldb.Rows{Table: "shop", Columns: []string{"id", "good_id", "count", "price", "active"}}
	stock := sqldb.Bulk{Head: "INSERT INTO shop (id, good_id, count, price, active) VALUES ",
		Tail: " ON DUPLICATE KEY UPDATE count = VALUES(count), price = VALUES(price)", Cols: 5}
	for _, k := range keys {
		row := s.stock[k]
		if row.exists {
			stock.Add(k.shop, k.good, row.count, row.price.String(), s.shop(k.shop).active)
		} else {
			newStock.Add(k.shop, k.good, row.count, row.price, s.shop(k.shop).active)
		}
	}
	if err := newStock.Insert(ctx, tx, load); err != nil {
		return fmt.Errorf("new stock: %w", err)
	}
	if err := stock.Exec(ctx, tx); err != nil {
		return fmt.Errorf("stock: %w", err)
	}
	return nil
}

// writeEvents inserts the batch's events rows and its pending returns.
func (s *state) writeEvents(ctx context.Context, tx *sql.Tx, load bool) error {
	events := sqldb.Rows{Table: "events", Columns: []string{"event_key", "event_type", "shop_id", "user_id", "order_id", "good_id",
		"timestamp", "shard", "status", "reason", "source_file", "source_line"}}
	pending := sqldb.Rows{Table: "pending_return", Columns: []string{"source_file", "source_line", "order_id", "shop_id", "pending_until", "detail"}}
	for _, r := range s.rows {
		e := r.ev
		var ts any
		if r.status == StatusPending {
			d, _ := json.Marshal(e)
			pending.Add(e.Src.File, e.Src.Line, e.OrderID, e.ShopID, r.pending, string(d))
		}
		if !e.TS.IsZero() {
			ts = e.TS
		}
		valid := e.Reject == ""
		byOrder := e.Type == event.Purchase || e.Type == event.Return
		events.Add(e.Key, int(e.Type),
			nullID(e.ShopID, valid && !e.Orphan || e.ShopID != 0),
			nullID(e.UserID, valid && byOrder || e.UserID != 0),
			nullID(e.OrderID, valid && byOrder || e.OrderID != 0),
			nullID(e.GoodID, valid && e.Type != event.ShopStatus || e.GoodID != 0),
			ts, s.cfg.Shard, string(r.status), nullString(sqldb.Text(r.reason, 255)), e.Src.File, e.Src.Line)
	}
	if err := events.Insert(ctx, tx, load); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	if err := pending.Insert(ctx, tx, load); err != nil {
		return fmt.Errorf("pending returns: %w", err)
	}
	return nil
}

// writeOutbox inserts the domain events into the outbox and deletes them
// again, in the caller's transaction: the table stays empty, and the
// binlog carries each insert, which the cdc-producer routes (SPEC §5).
// The inserts append at the end of the outbox's clustered index (seq,
// AUTO_INCREMENT), and one range delete removes them: the worker is the
// outbox's only writer, as of every ledger table.
func writeOutbox(ctx context.Context, tx *sql.Tx, evs []domainEvent, load bool) error {
	if len(evs) == 0 {
		return nil
	}
	var last int64
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(seq), 0) FROM outbox").Scan(&last); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	rows := sqldb.Rows{Table: "outbox", Columns: []string{"id", "aggregatetype", "aggregateid", "type", "payload"}}
	for _, ev := range evs {
		rows.Add(ev.id, string(ev.typ.Aggregate()), ev.aggregateID, string(ev.typ), string(ev.payload))
	}
	if err := rows.Insert(ctx, tx, load); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	res, err := tx.ExecContext(ctx, "DELETE FROM outbox WHERE seq > ?", last)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if n, _ := res.RowsAffected(); n != int64(len(evs)) {
		return fmt.Errorf("outbox: deleted %d rows for the %d events just inserted: another writer uses the outbox", n, len(evs))
	}
	return nil
}

func nullID(v int64, present bool) any {
	if !present {
		return nil
	}
	return v
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

type set[T comparable] map[T]struct{}

func (s set[T]) add(v T) { s[v] = struct{}{} }

func (s set[T]) list() []T {
	out := make([]T, 0, len(s))
	for v := range s {
		out = append(out, v)
	}
	return out
}

type ordered interface{ ~int64 | ~string }

func sortedKeys[K ordered, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
