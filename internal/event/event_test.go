package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseHead(t *testing.T) {
	cases := []struct {
		name, line string
		wantType   Type
		wantShop   int64 // -1: none
		wantErr    string
	}{
		{"purchase", `{"event_type":1,"payload":{"order_id":7,"user_id":1,"shop_id":3,"good_id":2,"qty":1},"saved_at":"2025-10-15 17:41:40.018","timestamp":"2025-10-15 17:41:40.021"}`, Purchase, 3, ""},
		{"ts key", `{"event_type":2,"payload":{"shop_id":4,"good_id":2,"new_price":10},"ts":"2025-10-15 17:41:40.021"}`, PriceChange, 4, ""},
		{"return without shop", `{"event_type":3,"payload":{"order_id":7,"user_id":1,"good_id":2,"qty":1},"timestamp":"2025-10-15 17:41:40.021"}`, Return, -1, ""},
		{"bad json", `{"event_type":1,`, 0, 0, "invalid JSON"},
		{"no type", `{"payload":{},"timestamp":"2025-10-15 17:41:40.021"}`, 0, 0, "missing event_type"},
		{"unknown type", `{"event_type":9,"payload":{},"timestamp":"2025-10-15 17:41:40.021"}`, 0, 0, "unknown event_type 9"},
		{"payload array", `{"event_type":1,"payload":[],"timestamp":"2025-10-15 17:41:40.021"}`, 0, 0, "payload is not a JSON object"},
		{"no time", `{"event_type":4,"payload":{"shop_id":1,"active":true}}`, 0, 0, "missing timestamp"},
		{"bad time", `{"event_type":4,"payload":{"shop_id":1,"active":true},"ts":"yesterday"}`, 0, 0, "timestamp"},
		{"no shop", `{"event_type":0,"payload":{"good_id":1},"ts":"2025-10-15 17:41:40.021"}`, 0, 0, "stock_change without shop_id"},
		{"shop as string", `{"event_type":0,"payload":{"shop_id":"x"},"ts":"2025-10-15 17:41:40.021"}`, 0, 0, "routing field"},
		{"return without order", `{"event_type":3,"payload":{"user_id":1},"ts":"2025-10-15 17:41:40.021"}`, 0, 0, "return without order_id"},
	}
	for _, c := range cases {
		h, err := ParseHead([]byte(c.line))
		if c.wantErr != "" {
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: ParseHead error = %v, want ErrMalformed mentioning %q", c.name, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: ParseHead error = %v", c.name, err)
			continue
		}
		gotShop := int64(-1)
		if h.ShopID != nil {
			gotShop = *h.ShopID
		}
		if h.Type != c.wantType || gotShop != c.wantShop || len(h.Key) != 32 {
			t.Errorf("%s: ParseHead = %+v (shop %d), want type %s shop %d and a 32-char key", c.name, h, gotShop, c.wantType, c.wantShop)
		}
	}
}

func TestIdentity(t *testing.T) {
	key := func(line string) string {
		t.Helper()
		h, err := ParseHead([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		return h.Key
	}
	a := key(`{"event_type":1,"payload":{"order_id":7,"shop_id":3,"qty":1},"saved_at":"2025-10-15 17:41:40.018","timestamp":"2025-10-15 17:41:40.021"}`)
	// Same event, other encoder: key order, spacing, "ts", other saved_at.
	b := key(`{ "ts":"2025-10-15 17:41:40.021", "payload": {"qty":1, "shop_id":3, "order_id":7}, "event_type":1, "saved_at":"2025-10-15 17:41:41.000"}`)
	if a != b {
		t.Errorf("the same event encoded differently got keys %s and %s", a, b)
	}
	if c := key(`{"event_type":1,"payload":{"order_id":7,"shop_id":3,"qty":2},"timestamp":"2025-10-15 17:41:40.021"}`); c == a {
		t.Error("a different payload got the same key")
	}
	if c := key(`{"event_type":1,"payload":{"order_id":7,"shop_id":3,"qty":1},"timestamp":"2025-10-15 17:41:40.022"}`); c == a {
		t.Error("a different timestamp got the same key")
	}
	k1 := key(`{"event_type":1,"idempotency_key":"k-1","payload":{"order_id":7,"shop_id":3},"timestamp":"2025-10-15 17:41:40.021"}`)
	k2 := key(`{"event_type":1,"idempotency_key":"k-1","payload":{"order_id":8,"shop_id":3},"timestamp":"2025-10-15 17:41:41.021"}`)
	if k1 != k2 || k1 == a {
		t.Errorf("idempotency_key should decide identity: %s, %s (content key %s)", k1, k2, a)
	}
}

func TestPrepare(t *testing.T) {
	shop := int64(5)
	cases := []struct {
		name, line, reject string
	}{
		{"purchase", `{"event_type":1,"payload":{"order_id":7,"user_id":1,"shop_id":5,"good_id":2,"qty":3,"price_at_order":"12.50"},"ts":"2025-10-15 17:41:40.021"}`, ""},
		{"missing user", `{"event_type":1,"payload":{"order_id":7,"shop_id":5,"good_id":2,"qty":3},"ts":"2025-10-15 17:41:40.021"}`, "missing user_id"},
		{"zero qty", `{"event_type":1,"payload":{"order_id":7,"user_id":1,"shop_id":5,"good_id":2,"qty":0},"ts":"2025-10-15 17:41:40.021"}`, "qty must be 1..1000000000, got 0"},
		{"huge qty", `{"event_type":1,"payload":{"order_id":7,"user_id":1,"shop_id":5,"good_id":2,"qty":1000000001},"ts":"2025-10-15 17:41:40.021"}`, "qty must be 1..1000000000"},
		{"huge restock", `{"event_type":0,"payload":{"shop_id":5,"good_id":2,"delta_count":9223372036854775807,"sub_event_type":"restock"},"ts":"2025-10-15 17:41:40.021"}`, "delta_count must be within"},
		{"float price", `{"event_type":2,"payload":{"shop_id":5,"good_id":2,"new_price":1.005},"ts":"2025-10-15 17:41:40.021"}`, "invalid money amount"},
		{"restock down", `{"event_type":0,"payload":{"shop_id":5,"good_id":2,"delta_count":-1,"sub_event_type":"restock"},"ts":"2025-10-15 17:41:40.021"}`, "restock needs a positive delta_count"},
		{"unknown sub", `{"event_type":0,"payload":{"shop_id":5,"good_id":2,"delta_count":1,"sub_event_type":"gift"},"ts":"2025-10-15 17:41:40.021"}`, "not one of restock, defect, loss"},
		{"active string", `{"event_type":4,"payload":{"shop_id":5,"active":"yes"},"ts":"2025-10-15 17:41:40.021"}`, "payload"},
	}
	for _, c := range cases {
		r := Routed{Src: Source{File: "20251015174140", Line: 1}, Key: "k", ShopID: &shop, Event: json.RawMessage(c.line)}
		// Through the splitter's line format and back, as the worker reads it.
		var back Routed
		if err := json.Unmarshal(AppendRouted(nil, r), &back); err != nil {
			t.Fatalf("%s: AppendRouted wrote invalid JSON: %v", c.name, err)
		}
		p := Prepare(back)
		if c.reject == "" {
			if p.Reject != "" || p.Type != Purchase || p.Qty != 3 || *p.Price != 1250 || p.ShopID != 5 || p.Src != r.Src {
				t.Errorf("%s: Prepare = %+v, want a valid purchase of 3 at 12.50", c.name, p)
			}
			continue
		}
		if !strings.Contains(p.Reject, c.reject) {
			t.Errorf("%s: Prepare reject = %q, want it to mention %q", c.name, p.Reject, c.reject)
		}
	}
}
