package ledger

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/money"
)

// The rules of SPEC §4, pure: they read and change a batch's state in
// memory and record what happened (events rows, account transactions,
// returns); load.go fills the state from the shard and write.go stores the
// result. rules_test.go feeds events in and reads decisions out.

// Status is the status of an events row.
type Status string

// The statuses of an events row.
const (
	StatusApplied   Status = "applied"
	StatusRejected  Status = "rejected"
	StatusDuplicate Status = "duplicate"
	StatusPending   Status = "pending"
)

type stockKey struct{ shop, good int64 }

type stockRow struct {
	count  int64
	price  money.Cents
	exists bool // the (shop, good) row is in the shard
	dirty  bool // changed by the batch
}

// sold reports whether the good is sold in the shop: it has a row, in the
// shard or made by this batch.
func (s *stockRow) sold() bool { return s != nil && (s.exists || s.dirty) }

type userRow struct {
	balance money.Cents
	exists  bool // the user row is in the shard
	dirty   bool
}

type orderRow struct {
	userID, goodID, shopID, qty, returned int64
	price, refunded                       money.Cents
	exists                                bool // the purchase_history row is in the shard
	dirty                                 bool
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

// eventRow is the events row of one line.
type eventRow struct {
	ev      event.Prepared
	status  Status
	reason  string
	pending time.Time // until when a pending return waits
}

// accountTx is an account_transaction row: every balance change is one.
type accountTx struct {
	user   int64
	amount money.Cents
	typ    string // credit or debit
	reason string
	key    string // idempotency key
}

// orderReturn is an order_return row.
type orderReturn struct {
	order, qty int64
	amount     money.Cents
	key        string
}

// Limits on quantities and amounts: beyond them an event is rejected with
// its reason rather than overflowing a column (and stopping the shard).
const (
	maxQty    = event.MaxQuantity                    // per purchase or return
	maxAmount = money.Cents(999_999_999_999_999_999) // DECIMAL(18,2)
)

// state is what a batch's rules read and change.
type state struct {
	cfg     Config
	now     time.Time
	seen    map[string]bool // identities recorded as non-duplicates
	users   map[int64]*userRow
	stock   map[stockKey]*stockRow
	shops   map[int64]*shopRow
	orders  map[int64]*orderRow
	pending map[int64][]pendingRef // by order id
	goods   map[int64]money.Cents  // goods first seen by this batch, with their price

	rows    []eventRow
	settled []eventRow // returns held by earlier batches, now settled
	txs     []accountTx
	returns []orderReturn
	outbox  []domainEvent // in decision order (domain.go)
	stats   Stats
}

func newState(cfg Config, now time.Time) *state {
	return &state{cfg: cfg, now: now, seen: map[string]bool{},
		users: map[int64]*userRow{}, stock: map[stockKey]*stockRow{}, shops: map[int64]*shopRow{},
		orders: map[int64]*orderRow{}, pending: map[int64][]pendingRef{}, goods: map[int64]money.Cents{}}
}

// record appends the events row of e.
func (s *state) record(e event.Prepared, st Status, reason string) int {
	r := eventRow{ev: e, status: st, reason: reason}
	if st == StatusPending {
		r.pending = s.now.Add(s.cfg.PendingDelay)
	}
	s.rows = append(s.rows, r)
	s.stats.count(st)
	if st != StatusDuplicate {
		s.seen[e.Key] = true
	}
	return len(s.rows) - 1
}

// apply decides one event, records it and publishes its domain event.
func (s *state) apply(e event.Prepared) {
	if s.seen[e.Key] {
		s.record(e, StatusDuplicate, "")
		return
	}
	if e.Reject != "" {
		s.decide(e, "invalid: "+e.Reject, detail{})
		return
	}
	var reason string
	var d detail
	switch e.Type {
	case event.StockChange:
		d, reason = s.stockChange(e)
	case event.Purchase:
		d, reason = s.purchase(e)
		s.decide(e, reason, d)
		s.settlePending(e.OrderID, reason)
		return
	case event.PriceChange:
		d = s.priceChange(e)
	case event.ShopStatus:
		sh := s.shop(e.ShopID)
		sh.active, sh.changed = e.Active, true
	case event.Return:
		s.user(e.UserID)
		switch {
		case e.Orphan:
			reason = fmt.Sprintf("orphaned return: no purchase of order %d was seen", e.OrderID)
		case s.orders[e.OrderID] == nil:
			row := s.record(e, StatusPending, "")
			s.publish(e, StatusPending, "", detail{}, s.rows[row].pending, false)
			s.pending[e.OrderID] = append(s.pending[e.OrderID], pendingRef{row: row, ev: e})
			return
		default:
			d, reason = s.refund(e)
		}
	}
	s.decide(e, reason, d)
}

// decide records e as applied (no reason) or rejected, and publishes its
// domain event.
func (s *state) decide(e event.Prepared, reason string, d detail) {
	st := statusOf(reason)
	s.record(e, st, reason)
	s.publish(e, st, reason, d, time.Time{}, false)
}

func statusOf(reason string) Status {
	if reason == "" {
		return StatusApplied
	}
	return StatusRejected
}

func (s *state) shop(id int64) *shopRow {
	sh := s.shops[id]
	if sh == nil {
		sh = &shopRow{active: true} // shops are open until closed
		s.shops[id] = sh
	}
	return sh
}

func (s *state) stockRow(shop, good int64) *stockRow {
	k := stockKey{shop, good}
	r := s.stock[k]
	if r == nil {
		r = &stockRow{}
		s.stock[k] = r
	}
	return r
}

// user returns the user's row, creating the user with the initial balance
// (as a credit transaction) the first time the shard sees them.
func (s *state) user(id int64) *userRow {
	if u := s.users[id]; u != nil {
		return u
	}
	u := &userRow{dirty: true}
	s.users[id] = u
	if ib := s.cfg.InitialBalance; ib > 0 {
		u.balance = ib
		s.txs = append(s.txs, accountTx{user: id, amount: ib, typ: "credit", reason: "initial_balance", key: "initial:" + strconv.FormatInt(id, 10)})
	}
	return u
}

func (s *state) stockChange(e event.Prepared) (detail, string) {
	r := s.stockRow(e.ShopID, e.GoodID)
	switch {
	case r.count+e.Delta < 0 && e.Delta < 0:
		return detail{}, fmt.Sprintf("stock would go below zero: shop %d good %d has %d, %s of %d", e.ShopID, e.GoodID, r.count, e.Sub, e.Delta)
	case e.Delta > 0 && r.count > math.MaxInt64-e.Delta:
		return detail{}, fmt.Sprintf("stock would exceed %d: shop %d good %d has %d, %s of %d", int64(math.MaxInt64), e.ShopID, e.GoodID, r.count, e.Sub, e.Delta)
	}
	if !r.sold() {
		s.goods[e.GoodID] = 0
	}
	r.count += e.Delta
	r.dirty = true
	return detail{stock: r.count}, ""
}

// priceChange sets the price; it never refuses a valid event.
func (s *state) priceChange(e event.Prepared) detail {
	r := s.stockRow(e.ShopID, e.GoodID)
	d := detail{oldPrice: r.price, hadPrice: r.sold()}
	if !r.sold() {
		s.goods[e.GoodID] = *e.Price
	}
	r.price = *e.Price
	r.dirty = true
	return d
}

func (s *state) purchase(e event.Prepared) (detail, string) {
	u := s.user(e.UserID) // seen, whatever becomes of the purchase
	if s.orders[e.OrderID] != nil {
		return detail{}, fmt.Sprintf("order %d already exists", e.OrderID)
	}
	if !s.shop(e.ShopID).active {
		return detail{}, fmt.Sprintf("shop %d is closed", e.ShopID)
	}
	r := s.stock[stockKey{e.ShopID, e.GoodID}]
	if !r.sold() {
		return detail{}, fmt.Sprintf("good %d is not sold in shop %d", e.GoodID, e.ShopID)
	}
	// The shop's price is the price; a producer's price_at_order is a
	// statement of what the buyer agreed to, never the amount charged.
	price := r.price
	if e.Price != nil && *e.Price != price {
		return detail{}, fmt.Sprintf("price_at_order %s differs from the shop's price %s", *e.Price, price)
	}
	if e.Qty > maxQty || (e.Qty > 0 && int64(price) > int64(maxAmount)/e.Qty) {
		return detail{}, fmt.Sprintf("amount of %d × %s is too large", e.Qty, price)
	}
	amount := money.Cents(int64(price) * e.Qty)
	if r.count < e.Qty {
		return detail{}, fmt.Sprintf("insufficient stock: shop %d good %d has %d, order wants %d", e.ShopID, e.GoodID, r.count, e.Qty)
	}
	if u.balance < amount {
		return detail{}, fmt.Sprintf("insufficient balance: user %d has %s, order costs %s", e.UserID, u.balance, amount)
	}
	r.count -= e.Qty
	r.dirty = true
	u.balance -= amount
	u.dirty = true
	if amount > 0 {
		s.txs = append(s.txs, accountTx{user: e.UserID, amount: amount, typ: "debit", reason: "purchase", key: "purchase:" + strconv.FormatInt(e.OrderID, 10)})
	}
	s.orders[e.OrderID] = &orderRow{userID: e.UserID, goodID: e.GoodID, shopID: e.ShopID, qty: e.Qty, price: price, dirty: true}
	return detail{price: price, amount: amount, stock: r.count}, ""
}

// refund applies a return against its purchase.
func (s *state) refund(e event.Prepared) (detail, string) {
	o := s.orders[e.OrderID]
	switch {
	case o.userID != e.UserID:
		return detail{}, fmt.Sprintf("order %d was bought by user %d, not user %d", e.OrderID, o.userID, e.UserID)
	case o.goodID != e.GoodID:
		return detail{}, fmt.Sprintf("order %d is for good %d, not good %d", e.OrderID, o.goodID, e.GoodID)
	case e.ShopID != o.shopID:
		return detail{}, fmt.Sprintf("order %d was bought in shop %d, not shop %d", e.OrderID, o.shopID, e.ShopID)
	case e.Qty > o.qty-o.returned:
		return detail{}, fmt.Sprintf("return of %d exceeds the %d left of order %d (bought %d)", e.Qty, o.qty-o.returned, e.OrderID, o.qty)
	}
	amount := money.Cents(int64(o.price) * e.Qty)
	if e.Amount != nil {
		amount = *e.Amount
	}
	if left := money.Cents(int64(o.price)*o.qty) - o.refunded; amount > left {
		return detail{}, fmt.Sprintf("refund of %s exceeds the %s left to refund on order %d", amount, left, e.OrderID)
	}
	r := s.stockRow(o.shopID, o.goodID)
	if r.count > math.MaxInt64-e.Qty {
		return detail{}, fmt.Sprintf("stock would exceed %d: shop %d good %d has %d, return of %d", int64(math.MaxInt64), o.shopID, o.goodID, r.count, e.Qty)
	}
	r.count += e.Qty
	r.dirty = true
	u := s.user(e.UserID)
	u.balance += amount
	u.dirty = true
	o.returned += e.Qty
	o.refunded += amount
	o.dirty = true
	if amount > 0 {
		s.txs = append(s.txs, accountTx{user: e.UserID, amount: amount, typ: "credit", reason: "refund", key: "refund:" + e.Key})
	}
	s.returns = append(s.returns, orderReturn{order: e.OrderID, qty: e.Qty, amount: amount, key: e.Key})
	return detail{amount: amount, stock: r.count}, ""
}

// settlePending applies or rejects the returns that were waiting for the
// purchase of orderID, in the order they arrived.
func (s *state) settlePending(orderID int64, purchaseRejection string) {
	refs := s.pending[orderID]
	delete(s.pending, orderID)
	for _, ref := range refs {
		reason := ""
		var d detail
		if purchaseRejection != "" {
			reason = fmt.Sprintf("purchase of order %d was rejected: %s", orderID, purchaseRejection)
		} else {
			s.user(ref.ev.UserID)
			d, reason = s.refund(ref.ev)
		}
		st := statusOf(reason)
		s.publish(ref.ev, st, reason, d, time.Time{}, true)
		if !ref.stored {
			r := &s.rows[ref.row]
			r.status, r.reason, r.pending = st, reason, time.Time{}
			s.stats.Pending--
			s.stats.count(st)
			continue
		}
		s.settled = append(s.settled, eventRow{ev: ref.ev, status: st, reason: reason})
		s.stats.Resolved++
	}
}
