package event_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/eventgen"
)

// genLines are generated event lines, as ingest writes them.
func genLines(b *testing.B, n int) [][]byte {
	b.Helper()
	gen := eventgen.New(eventgen.World{Shops: 200, Goods: 500, Users: 5000}, 1)
	return gen.Batch("20251102000000", time.Date(2025, 11, 2, 0, 0, 0, 0, time.UTC), n)
}

// The splitter's cost per line: parse the head and the identity.
func BenchmarkParseHead(b *testing.B) {
	lines := genLines(b, 10_000)
	b.ResetTimer()
	for i := range b.N {
		if _, err := event.ParseHead(lines[i%len(lines)]); err != nil {
			b.Fatal(err)
		}
	}
}

// The shard-worker stage's cost per line: read a splitter line (with
// ParseRouted, or encoding/json alone as before it), prepare it, write the
// prepared line.
func BenchmarkPrepare(b *testing.B) {
	var routed [][]byte
	for i, l := range genLines(b, 10_000) {
		h, err := event.ParseHead(l)
		if err != nil {
			b.Fatal(err)
		}
		routed = append(routed, event.AppendRouted(nil, event.Routed{Src: event.Source{File: "20251102000000", Line: i + 1}, Key: h.Key, ShopID: h.ShopID, Event: l}))
	}
	for _, read := range []struct {
		name string
		read func([]byte) (event.Routed, error)
	}{
		{"ParseRouted", event.ParseRouted},
		{"json", func(b []byte) (r event.Routed, err error) { return r, json.Unmarshal(b, &r) }},
	} {
		b.Run("read="+read.name, func(b *testing.B) {
			for i := range b.N {
				r, err := read.read(routed[i%len(routed)])
				if err != nil {
					b.Fatal(err)
				}
				if _, err := json.Marshal(event.Prepare(r)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
