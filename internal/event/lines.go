package event

import (
	"bytes"
	"encoding/json"
	"strconv"
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

// Prepare turns a routed line into a prepared one, keeping the identity the
// splitter computed. Invalid events come back with Reject set; they are
// recorded, never dropped.
func Prepare(r Routed) Prepared {
	out := Prepared{Src: r.Src, Key: r.Key, Orphan: r.Orphan}
	env, t, ts, err := envelope(r.Event)
	if err != nil {
		out.Reject = err.Error()
		return out
	}
	out.Type, out.TS = t, ts
	var p Payload
	if err := json.Unmarshal(env.Payload, &p); err != nil {
		out.Reject = "payload: " + err.Error()
		return out
	}
	if err := p.Validate(t); err != nil {
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
	if r.ShopID != nil && t == Return {
		out.ShopID = *r.ShopID
	}
	switch t {
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

// AppendRouted appends r as one JSON line without re-encoding r.Event, which
// must be a valid JSON object (every line the splitter routes has parsed).
func AppendRouted(b []byte, r Routed) []byte {
	b = append(b, `{"src":{"file":`...)
	b = strconv.AppendQuote(b, r.Src.File)
	b = append(b, `,"line":`...)
	b = strconv.AppendInt(b, int64(r.Src.Line), 10)
	b = append(b, `},"key":"`...)
	b = append(b, r.Key...)
	b = append(b, '"')
	if r.ShopID != nil {
		b = append(b, `,"shop_id":`...)
		b = strconv.AppendInt(b, *r.ShopID, 10)
	}
	if r.Orphan {
		b = append(b, `,"orphan":true`...)
	}
	b = append(b, `,"event":`...)
	b = append(b, r.Event...)
	return append(b, "}\n"...)
}

// ParseRouted reads a splitter line. Lines in the shape AppendRouted
// writes are read without reflection; any other line is read by
// encoding/json, so the result (and the error) is always what
// json.Unmarshal would give.
func ParseRouted(line []byte) (Routed, error) {
	if r, ok := parseRoutedShape(line); ok {
		return r, nil
	}
	var r Routed
	err := json.Unmarshal(line, &r)
	return r, err
}

// parseRoutedShape reads line if it is exactly in AppendRouted's shape,
// with plain ASCII strings (no escapes) and a valid JSON event; ok is
// false for anything else.
func parseRoutedShape(line []byte) (r Routed, ok bool) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	rest, ok := cutPrefix(line, `{"src":{"file":"`)
	if !ok {
		return r, false
	}
	if r.Src.File, rest, ok = plainString(rest); !ok {
		return r, false
	}
	if rest, ok = cutPrefix(rest, `,"line":`); !ok {
		return r, false
	}
	var n int64
	if n, rest, ok = jsonInt(rest); !ok || int64(int(n)) != n {
		return r, false
	}
	r.Src.Line = int(n)
	if rest, ok = cutPrefix(rest, `},"key":"`); !ok {
		return r, false
	}
	if r.Key, rest, ok = plainString(rest); !ok {
		return r, false
	}
	if after, found := cutPrefix(rest, `,"shop_id":`); found {
		var shop int64
		if shop, rest, ok = jsonInt(after); !ok {
			return r, false
		}
		r.ShopID = &shop
	}
	if after, found := cutPrefix(rest, `,"orphan":true`); found {
		r.Orphan, rest = true, after
	}
	if rest, ok = cutPrefix(rest, `,"event":`); !ok || len(rest) < 2 || rest[len(rest)-1] != '}' {
		return r, false
	}
	ev := rest[:len(rest)-1]
	if isSpace(ev[0]) || isSpace(ev[len(ev)-1]) || !json.Valid(ev) {
		return r, false
	}
	r.Event = append(json.RawMessage(nil), ev...)
	return r, true
}

func cutPrefix(b []byte, prefix string) ([]byte, bool) {
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return b, false
	}
	return b[len(prefix):], true
}

// plainString reads the rest of a JSON string of printable ASCII without
// escapes, up to and including its closing quote.
func plainString(b []byte) (string, []byte, bool) {
	for i, c := range b {
		switch {
		case c == '"':
			return string(b[:i]), b[i+1:], true
		case c == '\\' || c < 0x20 || c > 0x7e:
			return "", b, false
		}
	}
	return "", b, false
}

// jsonInt reads a JSON integer (no leading zeros, no fraction or
// exponent) that fits an int64.
func jsonInt(b []byte) (int64, []byte, bool) {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	digits := i - start
	if digits == 0 || digits > 1 && b[start] == '0' || i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E') {
		return 0, b, false
	}
	n, err := strconv.ParseInt(string(b[:i]), 10, 64)
	if err != nil {
		return 0, b, false
	}
	return n, b[i:], true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
