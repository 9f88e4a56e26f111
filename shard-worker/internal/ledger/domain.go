package ledger

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/money"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// The domain events of the transactional outbox (SPEC §5), pure like the
// rules: each decision of rules.go that other services care about becomes
// one domain event, written to the outbox table in the batch's transaction
// (write.go) and routed by the cdc-producer to <prefix>.outbox.<aggregate>.
// A duplicate line produces none; every other line produces exactly one for
// its outcome, and a return held as pending one more (ReturnPending) before
// its outcome.

// DomainType is the type of a domain event: the outbox row's type column,
// and the message's type header.
type DomainType string

// The domain events, by the aggregate they belong to.
const (
	// OrderPlaced: a purchase was applied (stock taken, balance debited).
	OrderPlaced DomainType = "OrderPlaced"
	// OrderRejected: a purchase was refused by a rule, with its reason.
	OrderRejected DomainType = "OrderRejected"
	// ReturnPending: a return arrived before its purchase and waits for it.
	ReturnPending DomainType = "ReturnPending"
	// OrderRefunded: a return was applied (stock back, balance credited),
	// at once or when its purchase arrived.
	OrderRefunded DomainType = "OrderRefunded"
	// ReturnRejected: a return was refused by a rule, at once, with its
	// rejected purchase, or as orphaned once its pending delay ran out.
	ReturnRejected DomainType = "ReturnRejected"

	// StockChanged: a restock, defect or loss was applied.
	StockChanged DomainType = "StockChanged"
	// StockChangeRejected: a stock change was refused (below zero, overflow).
	StockChangeRejected DomainType = "StockChangeRejected"
	// PriceChanged: a good's price in a shop was set.
	PriceChanged DomainType = "PriceChanged"
	// ShopOpened and ShopClosed: a shop's open/close event was applied.
	ShopOpened DomainType = "ShopOpened"
	ShopClosed DomainType = "ShopClosed"

	// LineRejected: a line that is not a valid event (its payload failed
	// validation), so it has no order or shop to belong to.
	LineRejected DomainType = "LineRejected"
)

// Aggregate is the aggregatetype of a domain event: it names the event's
// topic, <prefix>.outbox.<aggregate>, and says what its aggregateid (the
// message key) is.
type Aggregate string

// The aggregates; topics.OutboxAggregates lists them for the cdc-producer.
const (
	AggregateOrder Aggregate = "order" // keyed by order_id
	AggregateShop  Aggregate = "shop"  // keyed by shop_id
	AggregateFile  Aggregate = "file"  // keyed by the events file's name
)

// Aggregate returns the aggregate events of type t belong to.
func (t DomainType) Aggregate() Aggregate {
	switch t {
	case OrderPlaced, OrderRejected, ReturnPending, OrderRefunded, ReturnRejected:
		return AggregateOrder
	case LineRejected:
		return AggregateFile
	}
	return AggregateShop
}

// OutboxNamespace is the UUID namespace of domain event ids: an event's id
// is the name-based (version 5) UUID of "<file>:<line>:<type>", so the same
// outcome of the same line always has the same id, whoever computes it.
var OutboxNamespace = uuid.MustParse("273d9209-e8a4-4d3b-aeba-e7d351cb9ace")

// EventID is the id of the domain event of type t that line src produced.
func EventID(src event.Source, t DomainType) string {
	return uuid.NewSHA1(OutboxNamespace, []byte(src.File+":"+strconv.Itoa(src.Line)+":"+string(t))).String()
}

// domainEvent is one outbox row.
type domainEvent struct {
	id          string
	typ         DomainType
	aggregateID string
	payload     []byte
}

// Payload is a domain event's payload (the outbox row's payload column and
// the message value). Every event says which line it comes from; the other
// fields are set for the types the README lists. Money is a decimal string.
type Payload struct {
	EventKey     string `json:"event_key"`            // the line's identity (SPEC §2)
	EventType    string `json:"event_type,omitempty"` // stock_change, purchase, ...
	File         string `json:"file"`                 // the events file's 14-digit name
	Line         int    `json:"line"`                 // the line in it
	Shard        int    `json:"shard"`
	Timestamp    string `json:"timestamp,omitempty"` // the event's time, RFC 3339 UTC
	OrderID      *int64 `json:"order_id,omitempty"`
	UserID       *int64 `json:"user_id,omitempty"`
	ShopID       *int64 `json:"shop_id,omitempty"`
	GoodID       *int64 `json:"good_id,omitempty"`
	Qty          *int64 `json:"qty,omitempty"`
	DeltaCount   *int64 `json:"delta_count,omitempty"`
	SubEventType string `json:"sub_event_type,omitempty"`
	ChangeReason string `json:"change_reason,omitempty"`  // a stock change's own reason text
	Price        string `json:"price,omitempty"`          // unit price charged, or the new price
	OldPrice     string `json:"old_price,omitempty"`      // the price before a price change
	PriceAtOrder string `json:"price_at_order,omitempty"` // what a refused order stated
	Amount       string `json:"amount,omitempty"`         // debited (order) or credited (refund)
	RefundAmount string `json:"refund_amount,omitempty"`  // what a return asked for
	StockAfter   *int64 `json:"stock_after,omitempty"`    // the good's stock in the shop after
	Active       *bool  `json:"active,omitempty"`
	Reason       string `json:"reason,omitempty"`        // why it was rejected
	PendingUntil string `json:"pending_until,omitempty"` // until when a return waits
	WasPending   bool   `json:"was_pending,omitempty"`   // a return settled after waiting
}

// timeLayout renders payload times: RFC 3339, UTC, milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z"

// detail is what a rule learned that the event's domain event carries.
type detail struct {
	price, amount money.Cents // purchase: unit price and total; refund: amount
	oldPrice      money.Cents
	hadPrice      bool  // oldPrice is set: the good was sold in the shop
	stock         int64 // the good's stock in the shop after the event
}

// domainType is the domain event of an event whose events row ends with
// status st; "" for none (duplicates).
func domainType(e event.Prepared, st Status) DomainType {
	switch {
	case st == StatusDuplicate:
		return ""
	case e.Reject != "":
		return LineRejected
	}
	applied := st == StatusApplied
	switch e.Type {
	case event.Purchase:
		return pick(applied, OrderPlaced, OrderRejected)
	case event.Return:
		if st == StatusPending {
			return ReturnPending
		}
		return pick(applied, OrderRefunded, ReturnRejected)
	case event.StockChange:
		return pick(applied, StockChanged, StockChangeRejected)
	case event.PriceChange:
		return PriceChanged
	case event.ShopStatus:
		return pick(e.Active, ShopOpened, ShopClosed)
	}
	return ""
}

func pick(ok bool, yes, no DomainType) DomainType {
	if ok {
		return yes
	}
	return no
}

// newDomainEvent builds the domain event of e ending with status st (see
// domainType); ok is false when there is none.
func newDomainEvent(shard int, e event.Prepared, st Status, reason string, d detail, until time.Time, wasPending bool) (domainEvent, bool) {
	t := domainType(e, st)
	if t == "" {
		return domainEvent{}, false
	}
	// Free text is cut as in the events row, so that no line can make a
	// message larger than the broker takes.
	p := Payload{EventKey: e.Key, File: e.Src.File, Line: e.Src.Line, Shard: shard, Reason: sqldb.Text(reason, 255), WasPending: wasPending}
	if !e.TS.IsZero() {
		p.Timestamp = e.TS.UTC().Format(timeLayout)
	}
	ev := domainEvent{id: EventID(e.Src, t), typ: t}
	if t == LineRejected {
		ev.aggregateID = e.Src.File
		ev.payload = marshal(p)
		return ev, true
	}
	p.EventType = e.Type.String()
	switch t.Aggregate() {
	case AggregateOrder:
		ev.aggregateID = strconv.FormatInt(e.OrderID, 10)
		p.OrderID, p.UserID, p.GoodID, p.Qty = &e.OrderID, &e.UserID, &e.GoodID, &e.Qty
		if e.ShopID != 0 { // an orphaned return has no shop
			p.ShopID = &e.ShopID
		}
	default:
		ev.aggregateID = strconv.FormatInt(e.ShopID, 10)
		p.ShopID = &e.ShopID
		if e.Type != event.ShopStatus {
			p.GoodID = &e.GoodID
		}
	}
	switch t {
	case OrderPlaced:
		p.Price, p.Amount, p.StockAfter = d.price.String(), d.amount.String(), &d.stock
	case OrderRejected:
		if e.Price != nil {
			p.PriceAtOrder = e.Price.String()
		}
	case ReturnPending, ReturnRejected:
		if e.Amount != nil {
			p.RefundAmount = e.Amount.String()
		}
		if t == ReturnPending {
			p.PendingUntil = until.UTC().Format(timeLayout)
		}
	case OrderRefunded:
		p.Amount, p.StockAfter = d.amount.String(), &d.stock
	case StockChanged, StockChangeRejected:
		p.DeltaCount, p.SubEventType, p.ChangeReason = &e.Delta, e.Sub, sqldb.Text(e.Reason, 255)
		if t == StockChanged {
			p.StockAfter = &d.stock
		}
	case PriceChanged:
		p.Price = e.Price.String()
		if d.hadPrice {
			p.OldPrice = d.oldPrice.String()
		}
	case ShopOpened, ShopClosed:
		p.Active = &e.Active
	}
	ev.payload = marshal(p)
	return ev, true
}

// marshal encodes p exactly as encoding/json does (FuzzPayloadEncoding
// holds it to that), without reflection: a payload is written per outcome,
// a few microseconds each with encoding/json.
func marshal(p Payload) []byte {
	b := make([]byte, 0, 320)
	b = appendStringField(b, `{"event_key":`, p.EventKey, true)
	b = appendStringField(b, `,"event_type":`, p.EventType, false)
	b = appendStringField(b, `,"file":`, p.File, true)
	b = append(b, `,"line":`...)
	b = strconv.AppendInt(b, int64(p.Line), 10)
	b = append(b, `,"shard":`...)
	b = strconv.AppendInt(b, int64(p.Shard), 10)
	b = appendStringField(b, `,"timestamp":`, p.Timestamp, false)
	b = appendIntField(b, `,"order_id":`, p.OrderID)
	b = appendIntField(b, `,"user_id":`, p.UserID)
	b = appendIntField(b, `,"shop_id":`, p.ShopID)
	b = appendIntField(b, `,"good_id":`, p.GoodID)
	b = appendIntField(b, `,"qty":`, p.Qty)
	b = appendIntField(b, `,"delta_count":`, p.DeltaCount)
	b = appendStringField(b, `,"sub_event_type":`, p.SubEventType, false)
	b = appendStringField(b, `,"change_reason":`, p.ChangeReason, false)
	b = appendStringField(b, `,"price":`, p.Price, false)
	b = appendStringField(b, `,"old_price":`, p.OldPrice, false)
	b = appendStringField(b, `,"price_at_order":`, p.PriceAtOrder, false)
	b = appendStringField(b, `,"amount":`, p.Amount, false)
	b = appendStringField(b, `,"refund_amount":`, p.RefundAmount, false)
	b = appendIntField(b, `,"stock_after":`, p.StockAfter)
	if p.Active != nil {
		b = append(b, `,"active":`...)
		b = strconv.AppendBool(b, *p.Active)
	}
	b = appendStringField(b, `,"reason":`, p.Reason, false)
	b = appendStringField(b, `,"pending_until":`, p.PendingUntil, false)
	if p.WasPending {
		b = append(b, `,"was_pending":true`...)
	}
	return append(b, '}')
}

// appendStringField appends name and s as encoding/json writes a string,
// nothing for an empty s unless always (omitempty).
func appendStringField(b []byte, name, s string, always bool) []byte {
	if s == "" && !always {
		return b
	}
	b = append(b, name...)
	for i := 0; i < len(s); i++ {
		// Anything encoding/json escapes (quotes, backslashes, control
		// and HTML characters, all but ASCII): let it write the string.
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // cannot fail for a string
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendIntField appends name and *v, nothing for nil (omitempty).
func appendIntField(b []byte, name string, v *int64) []byte {
	if v == nil {
		return b
	}
	b = append(b, name...)
	return strconv.AppendInt(b, *v, 10)
}

// publish records the domain event of e ending with status st.
func (s *state) publish(e event.Prepared, st Status, reason string, d detail, until time.Time, wasPending bool) {
	if ev, ok := newDomainEvent(s.cfg.Shard, e, st, reason, d, until, wasPending); ok {
		s.outbox = append(s.outbox, ev)
	}
}

// orphanReason is the reason of a pending return rejected when its delay
// ran out; ExpirePending's SQL writes the same text into its events row.
func orphanReason(orderID int64, delay time.Duration) string {
	return fmt.Sprintf("orphaned return: no purchase of order %d within %s", orderID, delay)
}
