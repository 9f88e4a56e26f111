package event

import (
	"encoding/json"
	"time"

	"github.com/shopledger/shopledger/internal/money"
)

// Source names the line an event came from: the events file's 14-digit stem
// and its 1-based line number. It follows the event through every stage so
// that each line of each file can be accounted for.
type Source struct {
	File string `json:"file"`
	Line int    `json:"line"`
}

// Routed is one line of a shard-splitter output file: the original line,
// verbatim, with where it came from, its identity and the shop it was routed
// by (for returns without shop_id, the shop of their purchase; nil when the
// purchase was unknown when the file was split).
type Routed struct {
	Src    Source          `json:"src"`
	Key    string          `json:"key"`
	ShopID *int64          `json:"shop_id,omitempty"`
	Orphan bool            `json:"orphan,omitempty"`
	Event  json.RawMessage `json:"event"`
}

// Prepared is one line of a shard-worker prepared file: a validated event in
// typed, flat form, or a rejection with its reason. The mysql-sender stage
// applies these without reading the original line again.
type Prepared struct {
	Src     Source       `json:"src"`
	Key     string       `json:"key"`
	Type    Type         `json:"type"`
	TS      time.Time    `json:"ts"`
	Reject  string       `json:"reject,omitempty"`
	ShopID  int64        `json:"shop_id,omitempty"`
	GoodID  int64        `json:"good_id,omitempty"`
	UserID  int64        `json:"user_id,omitempty"`
	OrderID int64        `json:"order_id,omitempty"`
	Qty     int64        `json:"qty,omitempty"`
	Delta   int64        `json:"delta,omitempty"`
	Price   *money.Cents `json:"price,omitempty"`
	Amount  *money.Cents `json:"amount,omitempty"`
	Active  bool         `json:"active,omitempty"`
	Orphan  bool         `json:"orphan,omitempty"`
	Sub     string       `json:"sub,omitempty"`
	Reason  string       `json:"reason,omitempty"`
}

// Prepare turns a routed line into a prepared one. Invalid events come back
// with Reject set; they are recorded, never dropped.
func Prepare(r Routed) Prepared {
	out := Prepared{Src: r.Src, Key: r.Key, Orphan: r.Orphan}
	head, err := ParseHead(r.Event)
	if err != nil {
		out.Reject = err.Error()
		return out
	}
	out.Type, out.TS = head.Type, head.Timestamp
	p, err := Decode(r.Event, head.Type)
	if err != nil {
		out.Reject = err.Error()
		return out
	}
	get := func(v *int64) int64 {
		if v == nil {
			return 0
		}
		return *v
	}
	out.ShopID, out.GoodID, out.UserID = get(p.ShopID), get(p.GoodID), get(p.UserID)
	out.OrderID, out.Qty, out.Delta = get(p.OrderID), get(p.Qty), get(p.DeltaCount)
	if r.ShopID != nil && head.Type == Return {
		out.ShopID = *r.ShopID
	}
	switch head.Type {
	case StockChange:
		out.Sub, out.Reason = p.SubEventType, p.Reason
	case Purchase:
		out.Price = p.PriceAtOrder
	case PriceChange:
		out.Price = p.NewPrice
	case Return:
		out.Amount = p.RefundAmount
	case ShopStatus:
		out.Active = *p.Active
	}
	return out
}
