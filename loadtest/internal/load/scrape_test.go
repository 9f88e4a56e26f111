package load

import (
	"bufio"
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP consumer_changes_total Change messages handled.
# TYPE consumer_changes_total counter
consumer_changes_total{result="applied"} 1234
consumer_changes_total{result="duplicate"} 5
shopledger_consumer_changes_total{result="applied"} 6
consumer_lag_messages{topic="shop.events",partition="0"} 7
consumer_lag_messages{topic="a,b=\"c\"",partition="1"} 3
cdc_lag_seconds 0.25
cdc_lag_seconds{shard="1"} 1.5e+00
go_gc_duration_seconds{quantile="0.5"} NaN
broken line
`
	ss := parseMetrics(bufio.NewScanner(strings.NewReader(text)))
	for _, tc := range []struct {
		name  string
		want  map[string]string
		value float64
		found bool
	}{
		{"consumer_changes_total", map[string]string{"result": "applied"}, 1240, true},
		{"consumer_changes_total", nil, 1245, true},
		{"consumer_lag_messages", nil, 10, true},
		{"consumer_lag_messages", map[string]string{"partition": "1"}, 3, true},
		{"cdc_rows_total", nil, 0, false},
	} {
		if v, ok := sum(ss, tc.name, tc.want); v != tc.value || ok != tc.found {
			t.Errorf("sum(%s, %v) = %v, %v; want %v, %v", tc.name, tc.want, v, ok, tc.value, tc.found)
		}
	}
	if v, ok := largest(ss, "cdc_lag_seconds"); v != 1.5 || !ok {
		t.Errorf("largest(cdc_lag_seconds) = %v, %v; want 1.5, true", v, ok)
	}
}

func TestProbeShop(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7} {
		seen := map[int64]bool{}
		for s := range n {
			p := probeShop(s, n)
			if int(p%int64(n)) != s || p < probeShopBase-int64(n) || seen[p] {
				t.Errorf("probeShop(%d, %d) = %d: not on shard %d, or not unique", s, n, p, s)
			}
			seen[p] = true
		}
	}
}
