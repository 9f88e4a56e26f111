// Package event is the event model of SPEC §2: the JSON line format of event
// files, its parsing and validation, the identity that makes a re-sent line the
// same event, and the line formats the splitter and the shard workers exchange.
package event

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shopledger/shopledger/internal/money"
)

// Type is an event_type value.
type Type int

// The event types of SPEC §2.
const (
	StockChange Type = 0
	Purchase    Type = 1
	PriceChange Type = 2
	Return      Type = 3
	ShopStatus  Type = 4
)

func (t Type) String() string {
	switch t {
	case StockChange:
		return "stock_change"
	case Purchase:
		return "purchase"
	case PriceChange:
		return "price_change"
	case Return:
		return "return"
	case ShopStatus:
		return "shop_status"
	}
	return fmt.Sprintf("type_%d", int(t))
}

// TimeLayout is the event time format: UTC, millisecond precision.
const TimeLayout = "2006-01-02 15:04:05.000"

// ErrMalformed wraps every reason a line cannot be read as an event at all.
var ErrMalformed = errors.New("malformed event")

// Envelope is an event line as producers write it. Timestamp may arrive under
// the key "ts" (an existing producer's model uses it).
type Envelope struct {
	EventType      *int            `json:"event_type"`
	Payload        json.RawMessage `json:"payload"`
	SavedAt        string          `json:"saved_at,omitempty"`
	Timestamp      string          `json:"timestamp,omitempty"`
	TS             string          `json:"ts,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
}

// Payload holds every payload field of every event type. Pointers tell a
// missing field from a zero one.
type Payload struct {
	ShopID       *int64       `json:"shop_id,omitempty"`
	GoodID       *int64       `json:"good_id,omitempty"`
	DeltaCount   *int64       `json:"delta_count,omitempty"`
	Reason       string       `json:"reason,omitempty"`
	SubEventType string       `json:"sub_event_type,omitempty"`
	OrderID      *int64       `json:"order_id,omitempty"`
	UserID       *int64       `json:"user_id,omitempty"`
	Qty          *int64       `json:"qty,omitempty"`
	PriceAtOrder *money.Cents `json:"price_at_order,omitempty"`
	NewPrice     *money.Cents `json:"new_price,omitempty"`
	OldPrice     *money.Cents `json:"old_price,omitempty"`
	RefundAmount *money.Cents `json:"refund_amount,omitempty"`
	Active       *bool        `json:"active,omitempty"`
}

// Head is what the splitter needs of a line: its type, routing fields, time
// and identity. ShopID is nil for returns that do not carry one.
type Head struct {
	Type      Type
	ShopID    *int64
	OrderID   *int64
	Timestamp time.Time
	Key       string
}

// routing is decoded leniently: a field of the wrong type here makes the
// line unroutable, every other field is checked by the shard worker.
type routing struct {
	ShopID  *int64 `json:"shop_id"`
	OrderID *int64 `json:"order_id"`
}

// envelope reads and checks the envelope of a line: its type, a payload
// object and a valid timestamp.
func envelope(line []byte) (Envelope, Type, time.Time, error) {
	var env Envelope
	if err := json.Unmarshal(line, &env); err != nil {
		return env, 0, time.Time{}, fmt.Errorf("%w: invalid JSON: %v", ErrMalformed, err)
	}
	if env.EventType == nil {
		return env, 0, time.Time{}, fmt.Errorf("%w: missing event_type", ErrMalformed)
	}
	t := Type(*env.EventType)
	if t < StockChange || t > ShopStatus {
		return env, 0, time.Time{}, fmt.Errorf("%w: unknown event_type %d", ErrMalformed, *env.EventType)
	}
	p := bytes.TrimSpace(env.Payload)
	if len(p) == 0 || p[0] != '{' {
		return env, 0, time.Time{}, fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	env.Payload = p
	tsText := env.Timestamp
	if tsText == "" {
		tsText = env.TS
	}
	if tsText == "" {
		return env, 0, time.Time{}, fmt.Errorf("%w: missing timestamp", ErrMalformed)
	}
	ts, err := ParseTime(tsText)
	if err != nil {
		return env, 0, time.Time{}, fmt.Errorf("%w: timestamp: %v", ErrMalformed, err)
	}
	return env, t, ts, nil
}

// ParseHead reads the envelope of a line and the fields that route it. An
// error wraps ErrMalformed and says what is wrong.
func ParseHead(line []byte) (Head, error) {
	env, t, ts, err := envelope(line)
	if err != nil {
		return Head{}, err
	}
	var r routing
	if err := json.Unmarshal(env.Payload, &r); err != nil {
		return Head{}, fmt.Errorf("%w: routing field: %v", ErrMalformed, err)
	}
	h := Head{Type: t, ShopID: r.ShopID, OrderID: r.OrderID, Timestamp: ts}
	switch {
	case t == Return && r.OrderID == nil:
		return Head{}, fmt.Errorf("%w: return without order_id", ErrMalformed)
	case t != Return && r.ShopID == nil:
		return Head{}, fmt.Errorf("%w: %s without shop_id", ErrMalformed, t)
	case r.ShopID != nil && *r.ShopID < 0:
		return Head{}, fmt.Errorf("%w: negative shop_id %d", ErrMalformed, *r.ShopID)
	}
	h.Key, err = identity(env, t, env.Payload, ts)
	if err != nil {
		return Head{}, err
	}
	return h, nil
}

// identity is the event's dedupe key: from idempotency_key when present,
// otherwise from its content (type, canonical payload, timestamp). The
// payload is canonicalised (keys sorted, numbers kept verbatim) so that the
// same event written by another encoder is still the same event.
func identity(env Envelope, t Type, payload []byte, ts time.Time) (string, error) {
	h := sha256.New()
	if env.IdempotencyKey != "" {
		h.Write([]byte("key\x00"))
		h.Write([]byte(env.IdempotencyKey))
	} else {
		dec := json.NewDecoder(bytes.NewReader(payload))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return "", fmt.Errorf("%w: payload: %v", ErrMalformed, err)
		}
		canon, err := json.Marshal(v)
		if err != nil {
			return "", fmt.Errorf("%w: payload: %v", ErrMalformed, err)
		}
		fmt.Fprintf(h, "content\x00%d\x00", t)
		h.Write(canon)
		h.Write([]byte{0})
		h.Write([]byte(ts.Format(TimeLayout)))
	}
	return hex.EncodeToString(h.Sum(nil)[:16]), nil
}

// ParseTime reads an event time: "YYYY-MM-DD HH:MM:SS[.fff]" in UTC, or
// RFC 3339.
func ParseTime(s string) (time.Time, error) {
	if t, err := time.ParseInLocation("2006-01-02 15:04:05.999999999", s, time.UTC); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not YYYY-MM-DD HH:MM:SS.mmm", s)
}

// FormatTime renders t in the event time format.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// MaxQuantity bounds qty and the size of delta_count: beyond it an event
// is rejected as out of range, so no quantity can overflow a column.
const MaxQuantity = 1_000_000_000

// SubEventTypes are the allowed sub_event_type values of a stock change.
var SubEventTypes = []string{"restock", "defect", "loss"}

// Decode reads the whole payload of a line whose head already parsed, and
// checks every field the shard worker relies on. The error, if any, is the
// reason recorded with the rejected event.
func Decode(line []byte, t Type) (Payload, error) {
	var env struct {
		Payload Payload `json:"payload"`
	}
	if err := json.Unmarshal(line, &env); err != nil {
		return Payload{}, fmt.Errorf("payload: %v", err)
	}
	return env.Payload, env.Payload.Validate(t)
}

// Validate checks the fields required by event type t and their ranges.
func (p Payload) Validate(t Type) error {
	var missing []string
	need := func(name string, ok bool) {
		if !ok {
			missing = append(missing, name)
		}
	}
	switch t {
	case StockChange:
		need("shop_id", p.ShopID != nil)
		need("good_id", p.GoodID != nil)
		need("delta_count", p.DeltaCount != nil)
		need("sub_event_type", p.SubEventType != "")
	case Purchase:
		need("order_id", p.OrderID != nil)
		need("user_id", p.UserID != nil)
		need("shop_id", p.ShopID != nil)
		need("good_id", p.GoodID != nil)
		need("qty", p.Qty != nil)
	case PriceChange:
		need("shop_id", p.ShopID != nil)
		need("good_id", p.GoodID != nil)
		need("new_price", p.NewPrice != nil)
	case Return:
		need("order_id", p.OrderID != nil)
		need("user_id", p.UserID != nil)
		need("good_id", p.GoodID != nil)
		need("qty", p.Qty != nil)
	case ShopStatus:
		need("shop_id", p.ShopID != nil)
		need("active", p.Active != nil)
	default:
		return fmt.Errorf("unknown event_type %d", int(t))
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	for _, f := range []struct {
		name string
		v    *int64
	}{{"shop_id", p.ShopID}, {"good_id", p.GoodID}, {"user_id", p.UserID}, {"order_id", p.OrderID}} {
		if f.v != nil && *f.v < 0 {
			return fmt.Errorf("negative %s %d", f.name, *f.v)
		}
	}
	if p.Qty != nil && (*p.Qty <= 0 || *p.Qty > MaxQuantity) {
		return fmt.Errorf("qty must be 1..%d, got %d", MaxQuantity, *p.Qty)
	}
	if p.DeltaCount != nil && (*p.DeltaCount > MaxQuantity || *p.DeltaCount < -MaxQuantity) {
		return fmt.Errorf("delta_count must be within ±%d, got %d", MaxQuantity, *p.DeltaCount)
	}
	for _, f := range []struct {
		name string
		v    *money.Cents
	}{{"price_at_order", p.PriceAtOrder}, {"new_price", p.NewPrice}, {"old_price", p.OldPrice}, {"refund_amount", p.RefundAmount}} {
		if f.v != nil && *f.v < 0 {
			return fmt.Errorf("negative %s %s", f.name, *f.v)
		}
	}
	if t == StockChange {
		d := *p.DeltaCount
		switch p.SubEventType {
		case "restock":
			if d <= 0 {
				return fmt.Errorf("restock needs a positive delta_count, got %d", d)
			}
		case "defect", "loss":
			if d >= 0 {
				return fmt.Errorf("%s needs a negative delta_count, got %d", p.SubEventType, d)
			}
		default:
			return fmt.Errorf("sub_event_type %q is not one of %s", p.SubEventType, strings.Join(SubEventTypes, ", "))
		}
	}
	return nil
}
