package event

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

var lineSeeds = []string{
	`{"event_type":1,"payload":{"order_id":7,"user_id":1,"shop_id":5,"good_id":2,"qty":3,"price_at_order":"12.50"},"saved_at":"2025-10-15 17:41:40.018","timestamp":"2025-10-15 17:41:40.021"}`,
	`{"event_type":3,"payload":{"order_id":7,"user_id":1,"good_id":2,"qty":1},"ts":"2025-10-15 17:41:40.021"}`,
	`{"event_type":0,"payload":{"shop_id":5,"good_id":2,"delta_count":-4,"reason":"x","sub_event_type":"loss"},"timestamp":"2025-10-15T17:41:40Z"}`,
	`{"event_type":2,"payload":{"shop_id":5,"good_id":2,"new_price":1.5},"timestamp":"2025-10-15 17:41:40.021","idempotency_key":"k-1"}`,
	`{"event_type":4,"payload":{"shop_id":5,"active":false},"timestamp":"2025-10-15 17:41:40.021"}`,
	`{"event_type":1,"payload":{"order_id":1e400},"timestamp":"2025-10-15 17:41:40.021"}`,
	`{"event_type":9,"payload":{}}`, `[]`, `{"event_type":1,"payload":[1,{"a":"\xff"}]}`,
}

// ParseHead never panics and names what is wrong; an accepted line's
// identity is 32 hex digits and stays the same when another encoder writes
// the same event (keys reordered, spaces, the same numbers); Prepare never
// panics and its rejection reason is valid UTF-8.
func FuzzParseHead(f *testing.F) {
	for _, s := range lineSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		h, err := ParseHead(line)
		p := Prepare(Routed{Src: Source{File: "20250101000000", Line: 1}, Key: h.Key, ShopID: h.ShopID, Event: line})
		if !utf8.ValidString(p.Reject) {
			t.Fatalf("Prepare(%q) rejects with invalid UTF-8: %q", line, p.Reject)
		}
		if err != nil {
			return
		}
		if len(h.Key) != 32 {
			t.Fatalf("identity %q of %q is not 32 hex digits", h.Key, line)
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		if dec.Decode(&v) != nil {
			return
		}
		again, _ := json.MarshalIndent(v, "", "  ") // another encoder: keys sorted, indented
		h2, err := ParseHead(again)
		if err != nil || h2.Key != h.Key {
			t.Fatalf("the same event re-encoded: ParseHead(%q) = %q, %v; want %q", again, h2.Key, err, h.Key)
		}
	})
}

// The prepared-file format round-trips: what the shard-worker stage writes
// is what the mysql-sender stage reads back, field for field.
func FuzzPreparedRoundTrip(f *testing.F) {
	for _, s := range lineSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		h, _ := ParseHead(line)
		p := Prepare(Routed{Src: Source{File: "20250101000000", Line: 7}, Key: h.Key, ShopID: h.ShopID, Event: line})
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("marshal %+v: %v", p, err)
		}
		var back Prepared
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("unmarshal %s: %v", b, err)
		}
		if !back.TS.Equal(p.TS) {
			t.Fatalf("timestamp %v read back as %v", p.TS, back.TS)
		}
		back.TS = p.TS
		if !reflect.DeepEqual(back, p) {
			t.Fatalf("prepared line %s reads back as\n%+v\nwant\n%+v", b, back, p)
		}
	})
}

// A splitter line round-trips: AppendRouted writes what encoding/json reads
// back as the same routed line.
func FuzzRoutedRoundTrip(f *testing.F) {
	for _, s := range lineSeeds {
		f.Add([]byte(s), int64(5), 12)
	}
	f.Fuzz(func(t *testing.T, line []byte, shop int64, n int) {
		if !json.Valid(line) || len(bytes.TrimSpace(line)) == 0 || bytes.TrimSpace(line)[0] != '{' {
			return // the splitter routes only lines that parsed
		}
		line = bytes.TrimSpace(line)
		var compact bytes.Buffer
		if json.Compact(&compact, line) != nil || compact.Len() != len(line) {
			return // and writes them as they came, on one line
		}
		if bytes.ContainsAny(line, "\n\r") {
			return
		}
		r := Routed{Src: Source{File: "20250101000000", Line: n}, Key: "0123456789abcdef0123456789abcdef", ShopID: &shop, Event: line}
		out := AppendRouted(nil, r)
		var back Routed
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("AppendRouted(%+v) = %s: %v", r, out, err)
		}
		if back.Src != r.Src || back.Key != r.Key || *back.ShopID != shop || !bytes.Equal(back.Event, line) {
			t.Fatalf("routed line %s reads back as %+v", out, back)
		}
	})
}

// ParseRouted reads every line as encoding/json does: the same routed
// line, or an error where json.Unmarshal has one.
func FuzzParseRouted(f *testing.F) {
	shop := int64(5)
	for i, s := range lineSeeds {
		f.Add(AppendRouted(nil, Routed{Src: Source{File: "20250101000000", Line: i}, Key: "0123456789abcdef0123456789abcdef", ShopID: &shop, Event: []byte(s)}))
		f.Add(AppendRouted(nil, Routed{Src: Source{File: "20250101000000", Line: -i}, Key: "k", Orphan: true, Event: []byte(s)}))
	}
	f.Add([]byte(`{"src":{"file":"a","line":01},"key":"k","event":{}}`))
	f.Add([]byte(`{"src":{"file":"a\u0041","line":1},"key":"k","shop_id":1e3,"event":{} }`))
	f.Add([]byte(`{"src":{"file":"a","line":1},"key":"k","event":{},"event":[]}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		got, err := ParseRouted(line)
		var want Routed
		wantErr := json.Unmarshal(line, &want)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("ParseRouted(%q) error %v, json.Unmarshal %v", line, err, wantErr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseRouted(%q) = %+v, json.Unmarshal %+v", line, got, want)
		}
	})
}
