package splitter

import (
	"time"

	"github.com/shopledger/shopledger/internal/event"
	"github.com/shopledger/shopledger/internal/shard"
)

// The routing of one events file, pure: from its parsed lines, the known
// routes of orders and the returns held from earlier files, where each line
// goes. split.go reads the inputs and writes the outputs; route_test.go
// feeds lines in and reads decisions out.

// line is one parsed line of an events file.
type line struct {
	n      int
	raw    []byte
	head   event.Head
	reason string // set for malformed lines
}

// held is a return without shop_id whose purchase was not known when its
// file was split.
type held struct {
	file    string
	line    int
	orderID int64
	key     string
	raw     []byte
	until   time.Time
	shopID  *int64 // the purchase's shop once known
	orphan  bool
	shard   int
	// released says an earlier attempt already released it into this file.
	released bool
}

// plan is where every line of a file goes.
type plan struct {
	out       map[int][]event.Routed // per shard, in line order, only for wanted shards
	malformed []line
	held      []held // returns of this file held for their purchase
	released  []held // returns of earlier files released into this file
	// targets are every shard a line of the file routes to, wanted or not:
	// each must have a row for the file, or its lines would be lost.
	targets map[int]bool
	counts  map[string]int // routed, malformed, held, released, orphaned
}

// fileOrders are the orders of a file's purchases and their shops, first
// occurrence wins.
func fileOrders(lines []line) map[int64]int64 {
	out := map[int64]int64{}
	for _, l := range lines {
		if l.reason == "" && l.head.Type == event.Purchase && l.head.OrderID != nil {
			if _, ok := out[*l.head.OrderID]; !ok {
				out[*l.head.OrderID] = *l.head.ShopID
			}
		}
	}
	return out
}

// route plans file: lines routed by shop (returns without shop_id by their
// purchase's shop in known, else held), then the waiting returns that can
// go now (purchase known, or held past their time as orphans, to shard
// order_id % N). Lines are only written for wanted shards, whose outputs
// this split makes; a held return is released only into a wanted shard, so
// that nothing is promised to a shard whose output for this file is final.
func route(file string, lines []line, known map[int64]int64, waiting []held, now time.Time, shards int, wanted map[int]bool) plan {
	p := plan{out: map[int][]event.Routed{}, targets: map[int]bool{}, counts: map[string]int{}}
	add := func(sh int, r event.Routed) {
		p.targets[sh] = true
		if wanted[sh] {
			p.out[sh] = append(p.out[sh], r)
		}
	}
	for _, l := range lines {
		if l.reason != "" {
			p.malformed = append(p.malformed, l)
			p.counts["malformed"]++
			continue
		}
		r := event.Routed{Src: event.Source{File: file, Line: l.n}, Key: l.head.Key, ShopID: l.head.ShopID, Event: l.raw}
		if l.head.Type == event.Return && r.ShopID == nil {
			shop, ok := known[*l.head.OrderID]
			if !ok {
				p.held = append(p.held, held{file: file, line: l.n, orderID: *l.head.OrderID, key: l.head.Key, raw: l.raw})
				p.counts["held"]++
				continue
			}
			r.ShopID = &shop
		}
		add(shard.For(*r.ShopID, shards), r)
		p.counts["routed"]++
	}
	for _, h := range waiting {
		switch shop, ok := known[h.orderID]; {
		case h.released:
			if !h.orphan {
				h.shopID = &shop
			}
		case ok:
			h.shopID = &shop
			h.shard = shard.For(shop, shards)
		case !now.Before(h.until):
			h.orphan = true
			h.shard = shard.For(h.orderID, shards)
		default:
			continue // still waiting
		}
		if !wanted[h.shard] {
			continue
		}
		add(h.shard, event.Routed{Src: event.Source{File: h.file, Line: h.line}, Key: h.key, ShopID: h.shopID, Orphan: h.orphan, Event: h.raw})
		p.released = append(p.released, h)
		if h.orphan {
			p.counts["orphaned"]++
		} else {
			p.counts["released"]++
		}
	}
	return p
}
