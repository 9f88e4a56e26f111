package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/shopledger/shopledger/cdc-producer/internal/replay"
)

// The bar shows rows, rate and position, and returns once finished.
func TestBar(t *testing.T) {
	var out bytes.Buffer
	b := &bar{out: &out}
	for i := int64(1); i <= 4; i++ {
		b.show(replay.Status{At: mysql.Position{Name: "binlog.000003", Pos: uint32(i * 100)}, Rows: int(i * 10), Done: i * 100, Total: 400,
			RowsPerSecond: 50, Finished: i == 4})
		time.Sleep(barEvery)
	}
	got := out.String()
	for _, want := range []string{"replay", "40 rows", "50 rows/s", "binlog.000003:400", "100 %"} {
		if !strings.Contains(got, want) {
			t.Errorf("bar output lacks %q:\n%q", want, got)
		}
	}
	var lines bytes.Buffer
	show, every := showProgress(&lines)
	if every != linesEvery {
		t.Errorf("not a terminal: every %s, want %s", every, linesEvery)
	}
	show(replay.Status{At: mysql.Position{Name: "binlog.000003", Pos: 4}, Rows: 7, Total: 400, Finished: true})
	if !strings.Contains(lines.String(), "replayed: 7 rows") {
		t.Errorf("plain progress: %q", lines.String())
	}
}
