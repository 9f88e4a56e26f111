package load

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/eventgen"
)

// The lines of a file: the generator's coherent mix (internal/eventgen:
// price and stock changes, purchases, returns with and without shop_id,
// returns before their purchase, shops opened and closed, verbatim
// duplicates), some bad lines, and two probe events at the end whose
// effects are unique, so that the run can see when the file's events have
// gone through the whole product:
//
//   - a purchase by a user no one has seen, the file's own (user id = the
//     file's stem as a number), of a good the probe shop does not sell: it
//     is rejected, but the shard credits the new user's initial balance,
//     so the user appears in balance's REST answer (GET
//     /api/v1/balances/{user}: 404 until then);
//   - a restock of a good only this file names (good id = the stem) in the
//     probe shop: the good appears in cache's REST answer (GET
//     /api/v1/shops/{shop}/goods/{good}).
//
// Probe shops are outside the generated world, one per shard, and files
// take turns, so every shard's path is probed.

// probeShopBase is where the probe shops' ids start; shard s's probe shop
// is the first id from here with id % shards == s.
const probeShopBase = 1_000_000_000

// unsoldGood is a good no shop sells, for the balance probe's purchase.
const unsoldGood = 999_999_999

// probeShop returns shard s's probe shop among n shards.
func probeShop(s, n int) int64 {
	return probeShopBase - probeShopBase%int64(n) + int64(s)
}

// file is one events file of the run.
type file struct {
	k        int       // its place in the run, from 0
	stem     string    // its name
	intended time.Time // when it was meant to be registered done
	events   int       // lines, probes and bad lines included
	lines    [][]byte
	shard    int   // the shard its probes go to
	probe    int64 // the probe user and good: the stem as a number
	shop     int64 // the probe shop

	done    time.Time // registered done; zero until then (or if it failed)
	stage   [3]time.Time
	seenBal time.Time // the balance probe became visible
	seenCch time.Time // the cache probe
}

// builder makes the files' lines.
type builder struct {
	model  *eventgen.Model
	rng    *rand.Rand
	bad    float64 // fraction of bad lines
	shards int
	nBad   int
}

func newBuilder(world eventgen.World, seed uint64, bad float64, shards int) *builder {
	return &builder{model: eventgen.New(world, seed), rng: rand.New(rand.NewPCG(seed, 0x10ad7e57)), bad: bad, shards: shards}
}

// build fills f's lines: n events in all, its two probes included.
func (b *builder) build(f *file, n int, now time.Time) {
	f.probe, _ = strconv.ParseInt(f.stem, 10, 64)
	f.shard = f.k % b.shards
	f.shop = probeShop(f.shard, b.shards)
	gen := b.model.Batch(f.stem, now, max(0, n-2))
	lines := make([][]byte, 0, n)
	for i, l := range gen {
		if b.bad > 0 && b.rng.Float64() < b.bad {
			lines = append(lines, b.badLine(f, i, now))
			continue
		}
		lines = append(lines, l)
	}
	ts := event.FormatTime(now)
	lines = append(lines,
		jsonLine(map[string]any{"event_type": int(event.Purchase), "timestamp": ts, "saved_at": ts, "idempotency_key": "load-test-probe-purchase-" + f.stem,
			"payload": map[string]any{"order_id": f.probe*100_000 + 99_999, "user_id": f.probe, "shop_id": f.shop, "good_id": unsoldGood, "qty": 1}}),
		jsonLine(map[string]any{"event_type": int(event.StockChange), "timestamp": ts, "saved_at": ts, "idempotency_key": "load-test-probe-restock-" + f.stem,
			"payload": map[string]any{"shop_id": f.shop, "good_id": f.probe, "delta_count": 1, "reason": "load-test probe", "sub_event_type": "restock"}}))
	f.lines, f.events = lines, len(lines)
}

// badLine returns a line the pipeline must refuse with its reason without
// losing or blocking anything else: broken JSON, no JSON, an unknown event
// type, an invalid purchase.
func (b *builder) badLine(f *file, i int, now time.Time) []byte {
	b.nBad++
	ts := event.FormatTime(now)
	switch b.rng.IntN(4) {
	case 0:
		return []byte(`{"event_type":1,"payload":{"order_id":` + strconv.Itoa(i))
	case 1:
		return []byte(fmt.Sprintf("load-test bad line %s/%d", f.stem, i))
	case 2:
		return jsonLine(map[string]any{"event_type": 9, "timestamp": ts, "payload": map[string]any{"shop_id": 1}})
	}
	return jsonLine(map[string]any{"event_type": int(event.Purchase), "timestamp": ts, "idempotency_key": fmt.Sprintf("load-test-bad-%s-%d", f.stem, i),
		"payload": map[string]any{"order_id": f.probe*100_000 + 99_998, "user_id": 1, "shop_id": 1, "good_id": 1, "qty": -3}})
}

func jsonLine(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
