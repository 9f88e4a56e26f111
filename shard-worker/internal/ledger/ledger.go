// Package ledger applies prepared events to a shard database under the rules
// of SPEC §4: each line is recorded exactly once in `events` (applied,
// rejected with its reason, duplicate, or pending), duplicates are applied
// once, stock never goes below zero, closed shops sell nothing, purchases
// need the balance, returns must match their purchase, and every balance
// change is an account_transaction.
//
// A batch is one transaction: the state the batch touches is read in bulk,
// the rules run in memory in line order, and the results are written with
// multi-row statements. This is correct because the shard worker is the
// shard's only writer.
package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/money"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// Statuses of an events row.
const (
	StatusApplied   = "applied"
	StatusRejected  = "rejected"
	StatusDuplicate = "duplicate"
	StatusPending   = "pending"
)

// Config holds the rules' parameters.
type Config struct {
	Shard int
	// InitialBalance is credited to a user the first time the shard sees them.
	InitialBalance money.Cents
	// PendingDelay is how long a return waits for its purchase before it is
	// rejected as orphaned.
	PendingDelay time.Duration
}

// Ledger applies batches to one shard.
type Ledger struct {
	db  *sql.DB
	cfg Config
	now func() time.Time
}

// New returns a ledger on db.
func New(db *sql.DB, cfg Config) *Ledger {
	return &Ledger{db: db, cfg: cfg, now: time.Now}
}

// Stats counts what a batch did, by events row status.
type Stats struct {
	Applied, Rejected, Duplicate, Pending int
	// Resolved counts earlier pending returns settled by this batch.
	Resolved int
}

// Add sums s and o.
func (s *Stats) Add(o Stats) {
	s.Applied += o.Applied
	s.Rejected += o.Rejected
	s.Duplicate += o.Duplicate
	s.Pending += o.Pending
	s.Resolved += o.Resolved
}

type stockKey struct{ shop, good int64 }

type stockRow struct {
	count  int64
	price  money.Cents
	exists bool
	dirty  bool
}

type userRow struct {
	balance money.Cents
	exists  bool
	dirty   bool
}

type orderRow struct {
	userID, goodID, shopID, qty, returned int64
	price, refunded                       money.Cents
	exists, dirty                         bool
}

type shopRow struct {
	active  bool
	changed bool
}

// pendingRef is a return waiting for its purchase: either one held by an
// earlier batch (stored) or a line of this batch (row index).
type pendingRef struct {
	stored bool
	row    int
	ev     event.Prepared
}

type eventRow struct {
	ev      event.Prepared
	status  string
	reason  string
	pending time.Time
}

type batch struct {
	l       *Ledger
	now     time.Time
	seen    map[string]bool // identities recorded as non-duplicates
	users   map[int64]*userRow
	stock   map[stockKey]*stockRow
	shops   map[int64]*shopRow
	orders  map[int64]*orderRow
	pending map[int64][]pendingRef
	goods   map[int64]money.Cents
	rows    []eventRow
	settled []eventRow // returns held by earlier batches, now settled
	txs     sqldb.Bulk
	returns sqldb.Bulk
	stats   Stats
}

// Progress says how many lines of a prepared file are applied once the
// batch commits; it is stored in the batch's transaction.
type Progress struct {
	File  string // prepared file's stem; "" records nothing
	Lines int
}

// Applied returns how many lines of file's prepared file are applied.
func (l *Ledger) Applied(ctx context.Context, file string) (int, error) {
	var n int
	err := l.db.QueryRowContext(ctx, "SELECT applied_lines FROM file_progress WHERE filename = ?", file).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read progress of %s: %w", file, err)
	}
	return n, nil
}

// Apply records and applies evs, in order, in one transaction, together with
// progress p.
func (l *Ledger) Apply(ctx context.Context, evs []event.Prepared, p Progress) (Stats, error) {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return Stats{}, err
	}
	defer tx.Rollback()
	b := &batch{
		l: l, now: l.now().UTC(),
		seen:  map[string]bool{},
		users: map[int64]*userRow{}, stock: map[stockKey]*stockRow{}, shops: map[int64]*shopRow{},
		orders: map[int64]*orderRow{}, pending: map[int64][]pendingRef{}, goods: map[int64]money.Cents{},
		txs:     sqldb.Bulk{Head: "INSERT INTO account_transaction (user_id, amount, type, reason, idempotency_key) VALUES ", Cols: 5},
		returns: sqldb.Bulk{Head: "INSERT INTO order_return (order_id, qty, amount, event_key) VALUES ", Cols: 4},
	}
	if err := b.load(ctx, tx, evs); err != nil {
		return Stats{}, fmt.Errorf("load state: %w", err)
	}
	for _, e := range evs {
		b.apply(e)
	}
	if err := b.write(ctx, tx); err != nil {
		return Stats{}, fmt.Errorf("write: %w", err)
	}
	if p.File != "" {
		if _, err := tx.ExecContext(ctx, `INSERT INTO file_progress (filename, applied_lines) VALUES (?, ?)
			ON DUPLICATE KEY UPDATE applied_lines = VALUES(applied_lines)`, p.File, p.Lines); err != nil {
			return Stats{}, fmt.Errorf("record progress: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return Stats{}, err
	}
	return b.stats, nil
}

// load reads, in bulk, every row the batch's rules may look at.
func (b *batch) load(ctx context.Context, tx *sql.Tx, evs []event.Prepared) error {
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
		b.seen[k] = true
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
		b.orders[id] = o
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
		b.pending[ref.ev.OrderID] = append(b.pending[ref.ev.OrderID], ref)
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
			if o := b.orders[e.OrderID]; o != nil {
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
	for _, refs := range b.pending {
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
		b.users[id] = u
		return nil
	})
	if err != nil {
		return err
	}
	err = sqldb.QueryIn(ctx, tx, "SELECT shop_id, active FROM shop_state WHERE shop_id IN (%s)", shopIDs.list(), func(r *sql.Rows) error {
		var id int64
		s := &shopRow{}
		if err := r.Scan(&id, &s.active); err != nil {
			return err
		}
		b.shops[id] = s
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
		s := &stockRow{exists: true}
		if err := r.Scan(&k.shop, &k.good, &s.count, &s.price); err != nil {
			return err
		}
		if stockKeys[k] {
			b.stock[k] = s
		}
		return nil
	})
}

// record appends the events row of e.
func (b *batch) record(e event.Prepared, status, reason string) int {
	r := eventRow{ev: e, status: status, reason: reason}
	if status == StatusPending {
		r.pending = b.now.Add(b.l.cfg.PendingDelay)
	}
	b.rows = append(b.rows, r)
	b.count(status)
	if status != StatusDuplicate {
		b.seen[e.Key] = true
	}
	return len(b.rows) - 1
}

func (b *batch) count(status string) {
	switch status {
	case StatusApplied:
		b.stats.Applied++
	case StatusRejected:
		b.stats.Rejected++
	case StatusDuplicate:
		b.stats.Duplicate++
	case StatusPending:
		b.stats.Pending++
	}
}

func (b *batch) apply(e event.Prepared) {
	if b.seen[e.Key] {
		b.record(e, StatusDuplicate, "")
		return
	}
	if e.Reject != "" {
		b.record(e, StatusRejected, "invalid: "+e.Reject)
		return
	}
	var reason string
	switch e.Type {
	case event.StockChange:
		reason = b.stockChange(e)
	case event.Purchase:
		reason = b.purchase(e)
		b.record(e, status(reason), reason)
		b.settlePending(e.OrderID, reason)
		return
	case event.PriceChange:
		reason = b.priceChange(e)
	case event.ShopStatus:
		b.shopState(e.ShopID).active, b.shopState(e.ShopID).changed = e.Active, true
	case event.Return:
		b.user(e.UserID)
		switch {
		case e.Orphan:
			reason = fmt.Sprintf("orphaned return: no purchase of order %d was seen", e.OrderID)
		case b.orders[e.OrderID] == nil:
			row := b.record(e, StatusPending, "")
			b.pending[e.OrderID] = append(b.pending[e.OrderID], pendingRef{row: row, ev: e})
			return
		default:
			reason = b.refund(e)
		}
	}
	b.record(e, status(reason), reason)
}

func status(reason string) string {
	if reason == "" {
		return StatusApplied
	}
	return StatusRejected
}

func (b *batch) shopState(id int64) *shopRow {
	s := b.shops[id]
	if s == nil {
		s = &shopRow{active: true} // shops are open until closed
		b.shops[id] = s
	}
	return s
}

func (b *batch) stockRow(shop, good int64) *stockRow {
	k := stockKey{shop, good}
	s := b.stock[k]
	if s == nil {
		s = &stockRow{}
		b.stock[k] = s
	}
	return s
}

// user returns the user's row, creating the user with the initial balance
// (as a credit transaction) the first time the shard sees them.
func (b *batch) user(id int64) *userRow {
	if u := b.users[id]; u != nil {
		return u
	}
	u := &userRow{dirty: true}
	b.users[id] = u
	if ib := b.l.cfg.InitialBalance; ib > 0 {
		u.balance = ib
		b.txs.Add(id, ib.String(), "credit", "initial_balance", "initial:"+strconv.FormatInt(id, 10))
	}
	return u
}

func (b *batch) stockChange(e event.Prepared) string {
	s := b.stockRow(e.ShopID, e.GoodID)
	if s.count+e.Delta < 0 {
		return fmt.Sprintf("stock would go below zero: shop %d good %d has %d, %s of %d", e.ShopID, e.GoodID, s.count, e.Sub, e.Delta)
	}
	if !s.exists && !s.dirty {
		b.goods[e.GoodID] = 0
	}
	s.count += e.Delta
	s.dirty = true
	return ""
}

func (b *batch) priceChange(e event.Prepared) string {
	s := b.stockRow(e.ShopID, e.GoodID)
	if !s.exists && !s.dirty {
		b.goods[e.GoodID] = *e.Price
	}
	s.price = *e.Price
	s.dirty = true
	return ""
}

// maxQty bounds quantities so that qty × price cannot overflow.
const maxQty = 1_000_000_000

func (b *batch) purchase(e event.Prepared) string {
	u := b.user(e.UserID) // seen, whatever becomes of the purchase
	if b.orders[e.OrderID] != nil {
		return fmt.Sprintf("order %d already exists", e.OrderID)
	}
	if !b.shopState(e.ShopID).active {
		return fmt.Sprintf("shop %d is closed", e.ShopID)
	}
	s := b.stock[stockKey{e.ShopID, e.GoodID}]
	if s == nil || (!s.exists && !s.dirty) {
		return fmt.Sprintf("good %d is not sold in shop %d", e.GoodID, e.ShopID)
	}
	price := s.price
	if e.Price != nil {
		price = *e.Price
	}
	if e.Qty > maxQty || (e.Qty > 0 && int64(price) > int64(maxAmount)/e.Qty) {
		return fmt.Sprintf("amount of %d × %s is too large", e.Qty, price)
	}
	amount := money.Cents(int64(price) * e.Qty)
	if s.count < e.Qty {
		return fmt.Sprintf("insufficient stock: shop %d good %d has %d, order wants %d", e.ShopID, e.GoodID, s.count, e.Qty)
	}
	if u.balance < amount {
		return fmt.Sprintf("insufficient balance: user %d has %s, order costs %s", e.UserID, u.balance, amount)
	}
	s.count -= e.Qty
	s.dirty = true
	u.balance -= amount
	u.dirty = true
	if amount > 0 {
		b.txs.Add(e.UserID, amount.String(), "debit", "purchase", "purchase:"+strconv.FormatInt(e.OrderID, 10))
	}
	b.orders[e.OrderID] = &orderRow{userID: e.UserID, goodID: e.GoodID, shopID: e.ShopID, qty: e.Qty, price: price, dirty: true}
	return ""
}

const maxAmount = money.Cents(999_999_999_999_999_999)

// refund applies a return against its purchase.
func (b *batch) refund(e event.Prepared) string {
	o := b.orders[e.OrderID]
	switch {
	case o.userID != e.UserID:
		return fmt.Sprintf("order %d was bought by user %d, not user %d", e.OrderID, o.userID, e.UserID)
	case o.goodID != e.GoodID:
		return fmt.Sprintf("order %d is for good %d, not good %d", e.OrderID, o.goodID, e.GoodID)
	case e.ShopID != o.shopID:
		return fmt.Sprintf("order %d was bought in shop %d, not shop %d", e.OrderID, o.shopID, e.ShopID)
	case e.Qty > o.qty-o.returned:
		return fmt.Sprintf("return of %d exceeds the %d left of order %d (bought %d)", e.Qty, o.qty-o.returned, e.OrderID, o.qty)
	}
	amount := money.Cents(int64(o.price) * e.Qty)
	if e.Amount != nil {
		amount = *e.Amount
	}
	if left := money.Cents(int64(o.price)*o.qty) - o.refunded; amount > left {
		return fmt.Sprintf("refund of %s exceeds the %s left to refund on order %d", amount, left, e.OrderID)
	}
	s := b.stockRow(o.shopID, o.goodID)
	s.count += e.Qty
	s.dirty = true
	u := b.user(e.UserID)
	u.balance += amount
	u.dirty = true
	o.returned += e.Qty
	o.refunded += amount
	o.dirty = true
	if amount > 0 {
		b.txs.Add(e.UserID, amount.String(), "credit", "refund", "refund:"+e.Key)
	}
	b.returns.Add(e.OrderID, e.Qty, amount.String(), e.Key)
	return ""
}

// settlePending applies or rejects the returns that were waiting for the
// purchase of orderID, in the order they arrived.
func (b *batch) settlePending(orderID int64, purchaseRejection string) {
	refs := b.pending[orderID]
	delete(b.pending, orderID)
	for _, ref := range refs {
		reason := ""
		if purchaseRejection != "" {
			reason = fmt.Sprintf("purchase of order %d was rejected: %s", orderID, purchaseRejection)
		} else {
			b.user(ref.ev.UserID)
			reason = b.refund(ref.ev)
		}
		st := status(reason)
		if !ref.stored {
			r := &b.rows[ref.row]
			r.status, r.reason, r.pending = st, reason, time.Time{}
			b.stats.Pending--
			b.count(st)
			continue
		}
		b.settled = append(b.settled, eventRow{ev: ref.ev, status: st, reason: reason})
		b.stats.Resolved++
	}
}

// write stores the batch's results.
func (b *batch) write(ctx context.Context, tx *sql.Tx) error {
	if len(b.goods) > 0 {
		g := sqldb.Bulk{Head: "INSERT IGNORE INTO good (id, name, price) VALUES ", Cols: 3}
		for _, id := range sortedKeys(b.goods) {
			g.Add(id, "good-"+strconv.FormatInt(id, 10), b.goods[id].String())
		}
		if err := g.Exec(ctx, tx); err != nil {
			return fmt.Errorf("goods: %w", err)
		}
	}
	users := sqldb.Bulk{Head: "INSERT INTO user (id, name, balance) VALUES ", Tail: " ON DUPLICATE KEY UPDATE balance = VALUES(balance)", Cols: 3}
	for _, id := range sortedKeys(b.users) {
		if u := b.users[id]; u.dirty {
			users.Add(id, "user-"+strconv.FormatInt(id, 10), u.balance.String())
		}
	}
	if err := users.Exec(ctx, tx); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	if err := b.txs.Exec(ctx, tx); err != nil {
		return fmt.Errorf("account transactions: %w", err)
	}
	states := sqldb.Bulk{Head: "INSERT INTO shop_state (shop_id, active) VALUES ", Tail: " ON DUPLICATE KEY UPDATE active = VALUES(active)", Cols: 2}
	for _, id := range sortedKeys(b.shops) {
		if s := b.shops[id]; s.changed {
			states.Add(id, s.active)
			if _, err := tx.ExecContext(ctx, "UPDATE shop SET active = ? WHERE id = ?", s.active, id); err != nil {
				return fmt.Errorf("shop %d active: %w", id, err)
			}
		}
	}
	if err := states.Exec(ctx, tx); err != nil {
		return fmt.Errorf("shop states: %w", err)
	}
	stock := sqldb.Bulk{Head: "INSERT INTO shop (id, good_id, count, price, active) VALUES ",
		Tail: " ON DUPLICATE KEY UPDATE count = VALUES(count), price = VALUES(price)", Cols: 5}
	keys := make([]stockKey, 0, len(b.stock))
	for k, s := range b.stock {
		if s.dirty {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].shop < keys[j].shop || keys[i].shop == keys[j].shop && keys[i].good < keys[j].good
	})
	for _, k := range keys {
		s := b.stock[k]
		stock.Add(k.shop, k.good, s.count, s.price.String(), b.shopState(k.shop).active)
	}
	if err := stock.Exec(ctx, tx); err != nil {
		return fmt.Errorf("stock: %w", err)
	}
	orders := sqldb.Bulk{Head: "INSERT INTO purchase_history (order_id, user_id, good_id, shop_id, qty, price_at_order, returned_qty, refunded) VALUES ",
		Tail: " ON DUPLICATE KEY UPDATE returned_qty = VALUES(returned_qty), refunded = VALUES(refunded)", Cols: 8}
	for _, id := range sortedKeys(b.orders) {
		if o := b.orders[id]; o.dirty {
			orders.Add(id, o.userID, o.goodID, o.shopID, o.qty, o.price.String(), o.returned, o.refunded.String())
		}
	}
	if err := orders.Exec(ctx, tx); err != nil {
		return fmt.Errorf("purchases: %w", err)
	}
	if err := b.returns.Exec(ctx, tx); err != nil {
		return fmt.Errorf("returns: %w", err)
	}
	events := sqldb.Bulk{Head: `INSERT INTO events (event_key, event_type, shop_id, user_id, order_id, good_id, timestamp, shard,
		status, reason, source_file, source_line) VALUES `, Cols: 12}
	pending := sqldb.Bulk{Head: "INSERT INTO pending_return (source_file, source_line, order_id, shop_id, pending_until, detail) VALUES ", Cols: 6}
	for _, r := range b.rows {
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
			ts, b.l.cfg.Shard, r.status, nullString(truncate(r.reason, 255)), e.Src.File, e.Src.Line)
	}
	if err := events.Exec(ctx, tx); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	if err := pending.Exec(ctx, tx); err != nil {
		return fmt.Errorf("pending returns: %w", err)
	}
	for _, u := range b.settled {
		src := u.ev.Src
		res, err := tx.ExecContext(ctx, "UPDATE events SET status = ?, reason = ? WHERE source_file = ? AND source_line = ? AND status = 'pending'",
			u.status, nullString(truncate(u.reason, 255)), src.File, src.Line)
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
	return nil
}

// ExpirePending rejects, as orphaned, the pending returns whose delay has
// run out, and returns how many it rejected.
func (l *Ledger) ExpirePending(ctx context.Context) (int, error) {
	now := l.now().UTC()
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE events e JOIN pending_return p
		ON p.source_file = e.source_file AND p.source_line = e.source_line
		SET e.status = 'rejected', e.reason = CONCAT('orphaned return: no purchase of order ', p.order_id, ' within ', ?)
		WHERE p.pending_until <= ? AND e.status = 'pending'`, l.cfg.PendingDelay.String(), now)
	if err != nil {
		return 0, fmt.Errorf("expire pending returns: %w", err)
	}
	n, _ := res.RowsAffected()
	if _, err := tx.ExecContext(ctx, "DELETE FROM pending_return WHERE pending_until <= ?", now); err != nil {
		return 0, fmt.Errorf("expire pending returns: %w", err)
	}
	return int(n), tx.Commit()
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
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
