package splitter

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/event"
)

func parsed(t *testing.T, n int, text string) line {
	t.Helper()
	l := line{n: n, raw: []byte(text)}
	h, err := event.ParseHead(l.raw)
	if err != nil {
		l.reason = err.Error()
	} else {
		l.head = h
	}
	return l
}

func purchaseLine(order, shop int64) string {
	return fmt.Sprintf(`{"event_type":1,"payload":{"order_id":%d,"user_id":1,"shop_id":%d,"good_id":1,"qty":1},"ts":"2025-10-15 17:41:40.000"}`, order, shop)
}

func returnLine(order int64) string {
	return fmt.Sprintf(`{"event_type":3,"payload":{"order_id":%d,"user_id":1,"good_id":1,"qty":1},"ts":"2025-10-15 17:41:41.000"}`, order)
}

// where renders a plan as "shard:file:line" per routed line, then the held
// and malformed lines, for comparison.
func where(p plan) string {
	var out []string
	for sh := 0; sh < 4; sh++ {
		for _, r := range p.out[sh] {
			tag := ""
			if r.Orphan {
				tag = " orphan"
			}
			out = append(out, fmt.Sprintf("%d:%s:%d%s", sh, r.Src.File, r.Src.Line, tag))
		}
	}
	for _, h := range p.held {
		out = append(out, fmt.Sprintf("held:%d", h.line))
	}
	for _, m := range p.malformed {
		out = append(out, fmt.Sprintf("malformed:%d", m.n))
	}
	return strings.Join(out, " ")
}

func TestRoute(t *testing.T) {
	now := time.Date(2025, 10, 15, 18, 0, 0, 0, time.UTC)
	all := map[int]bool{0: true, 1: true}
	cases := []struct {
		name    string
		lines   []string
		known   map[int64]int64
		waiting []held
		wanted  map[int]bool
		want    string
		targets string
	}{
		{name: "by shop", lines: []string{purchaseLine(10, 4), purchaseLine(11, 5)}, wanted: all,
			want: "0:F:1 1:F:2", targets: "0 1"},
		{name: "a return follows its purchase in the same file", lines: []string{purchaseLine(10, 5), returnLine(10)}, wanted: all,
			want: "1:F:1 1:F:2", targets: "1"},
		{name: "a return follows its purchase from the order index", lines: []string{returnLine(10)}, known: map[int64]int64{10: 4}, wanted: all,
			want: "0:F:1", targets: "0"},
		{name: "a return whose purchase is unknown is held", lines: []string{returnLine(10)}, wanted: all, want: "held:1", targets: ""},
		{name: "a malformed line is set aside", lines: []string{`{"event_type":1`, purchaseLine(10, 4)}, wanted: all,
			want: "0:F:2 malformed:1", targets: "0"},
		{name: "a held return is released once its purchase is known", known: map[int64]int64{20: 5},
			waiting: []held{{file: "E", line: 3, orderID: 20, until: now.Add(time.Hour)}}, wanted: all, want: "1:E:3", targets: "1"},
		{name: "a held return waits", waiting: []held{{file: "E", line: 3, orderID: 20, until: now.Add(time.Hour)}}, wanted: all,
			want: "", targets: ""},
		{name: "a held return past its time goes as an orphan to order_id % N",
			waiting: []held{{file: "E", line: 3, orderID: 21, until: now}}, wanted: all, want: "1:E:3 orphan", targets: "1"},
		{name: "a release only into a shard being written", known: map[int64]int64{20: 5},
			waiting: []held{{file: "E", line: 3, orderID: 20, until: now.Add(time.Hour)}}, wanted: map[int]bool{0: true}, want: "", targets: ""},
		{name: "lines for a shard not being written are not written, but it is a target",
			lines: []string{purchaseLine(10, 4), purchaseLine(11, 5)}, wanted: map[int]bool{0: true}, want: "0:F:1", targets: "0 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var lines []line
			for i, text := range c.lines {
				lines = append(lines, parsed(t, i+1, text))
			}
			known := map[int64]int64{}
			for k, v := range c.known {
				known[k] = v
			}
			for k, v := range fileOrders(lines) {
				if _, ok := known[k]; !ok {
					known[k] = v
				}
			}
			p := route("F", lines, known, c.waiting, now, 2, c.wanted)
			if got := where(p); got != c.want {
				t.Errorf("route = %q, want %q", got, c.want)
			}
			var targets []string
			for sh := 0; sh < 4; sh++ {
				if p.targets[sh] {
					targets = append(targets, fmt.Sprint(sh))
				}
			}
			if got := strings.Join(targets, " "); got != c.targets {
				t.Errorf("targets = %q, want %q", got, c.targets)
			}
		})
	}
}
