package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/audit"
)

// A file written by a producer other than ours: the "ts" key, returns
// without shop_id (matching a purchase in the same file, in an earlier file,
// in a later file, and nothing at all), a malformed line, an unknown event
// type, an invalid payload and a duplicated line. Every line must be
// accounted for and every rule applied.
func TestForeignProducerFiles(t *testing.T) {
	s := startStack(t, 2, nil, "SPLITTER_RETURN_HOLD=2s")
	var malformed []byte
	ev := func(typ int, ts string, payload string) string {
		return fmt.Sprintf(`{"event_type":%d,"payload":%s,"saved_at":"%s","ts":"%s"}`, typ, payload, ts, ts)
	}
	purchase5 := ev(1, "2025-10-15 17:41:40.005", `{"order_id":100,"user_id":1,"shop_id":1,"good_id":1,"qty":2}`)
	a := []string{
		ev(2, "2025-10-15 17:41:40.001", `{"shop_id":1,"good_id":1,"new_price":10.00}`),
		ev(2, "2025-10-15 17:41:40.002", `{"shop_id":2,"good_id":1,"new_price":"5.00","old_price":4}`),
		ev(0, "2025-10-15 17:41:40.003", `{"shop_id":1,"good_id":1,"delta_count":10,"reason":"delivery","sub_event_type":"restock"}`),
		ev(0, "2025-10-15 17:41:40.004", `{"shop_id":2,"good_id":1,"delta_count":10,"reason":"delivery","sub_event_type":"restock"}`),
		purchase5,
		ev(1, "2025-10-15 17:41:40.006", `{"order_id":200,"user_id":2,"shop_id":2,"good_id":1,"qty":1}`),
		ev(3, "2025-10-15 17:41:40.007", `{"order_id":100,"user_id":1,"good_id":1,"qty":1}`),
		ev(3, "2025-10-15 17:41:40.008", `{"order_id":999,"user_id":3,"good_id":1,"qty":1}`),
		`{"event_type":1,"payload":`,
		purchase5,
		ev(3, "2025-10-15 17:41:40.011", `{"order_id":300,"user_id":2,"good_id":1,"qty":1,"shop_id":2}`),
		ev(1, "2025-10-15 17:41:40.012", `{"order_id":201,"user_id":2,"shop_id":2,"good_id":1,"qty":1000}`),
		`{"event_type":7,"payload":{"shop_id":1},"ts":"2025-10-15 17:41:40.013"}`,
		ev(1, "2025-10-15 17:41:40.014", `{"order_id":202,"shop_id":1,"good_id":1,"qty":1}`),
	}
	b := []string{
		ev(3, "2025-10-15 17:41:41.001", `{"order_id":200,"user_id":2,"good_id":1,"qty":1}`),
		ev(1, "2025-10-15 17:41:41.002", `{"order_id":300,"user_id":2,"shop_id":2,"good_id":1,"qty":2}`),
		ev(1, "2025-10-15 17:41:41.003", `{"order_id":999,"user_id":3,"shop_id":1,"good_id":1,"qty":1}`),
		ev(4, "2025-10-15 17:41:41.004", `{"shop_id":1,"active":false}`),
		ev(1, "2025-10-15 17:41:41.005", `{"order_id":101,"user_id":1,"shop_id":1,"good_id":1,"qty":1}`),
	}
	s.produce("20251015174140", a)
	s.waitFinished(time.Minute)
	s.produce("20251015174141", b)
	s.waitFinished(time.Minute)
	// A return of an order nobody bought, without shop_id: held, then sent
	// as an orphan with the first file split after the hold.
	s.produce("20251015174142", []string{ev(3, "2025-10-15 17:41:42.001", `{"order_id":555,"user_id":4,"good_id":1,"qty":1}`)})
	s.waitFinished(time.Minute)
	time.Sleep(2100 * time.Millisecond)
	s.produce("20251015174143", []string{ev(0, "2025-10-15 17:41:43.001", `{"shop_id":2,"good_id":1,"delta_count":1,"reason":"found","sub_event_type":"restock"}`)})
	s.waitFinished(time.Minute)
	// An empty file (what ingest writes for a registration whose events
	// were lost) goes through every stage.
	s.produce("20251015174144", nil)
	s.waitFinished(time.Minute)

	rep := s.audit()
	var err error
	if rep.Files != 5 || rep.Lines != len(a)+len(b)+2 {
		t.Errorf("audit checked %d files, %d lines; want 5, %d", rep.Files, rep.Lines, len(a)+len(b)+2)
	}

	// Where each line went and what became of it.
	want := []struct {
		file         string
		line, shard  int
		status, like string
	}{
		{"20251015174140", 1, 1, "applied", ""},
		{"20251015174140", 5, 1, "applied", ""},
		{"20251015174140", 6, 0, "applied", ""},
		{"20251015174140", 7, 1, "applied", ""},    // return routed to its purchase's shard
		{"20251015174140", 8, 1, "applied", ""},    // held, released when order 999 came
		{"20251015174140", 10, 1, "duplicate", ""}, // same line as 5
		{"20251015174140", 11, 0, "applied", ""},   // pending until order 300 came
		{"20251015174140", 12, 0, "rejected", "insufficient stock"},
		{"20251015174140", 14, 1, "rejected", "invalid: missing user_id"},
		{"20251015174141", 1, 0, "applied", ""}, // routed by the order index
		{"20251015174141", 2, 0, "applied", ""},
		{"20251015174141", 3, 1, "applied", ""},
		{"20251015174141", 5, 1, "rejected", "shop 1 is closed"},
		{"20251015174142", 1, 1, "rejected", "orphaned return"}, // 555 % 2
	}
	for _, w := range want {
		got := s.scalar(w.shard, "SELECT CONCAT(status, '|', COALESCE(reason, '')) FROM events WHERE source_file = ? AND source_line = ?", w.file, w.line)
		status, reason, _ := strings.Cut(got, "|")
		if status != w.status || !strings.Contains(reason, w.like) {
			t.Errorf("%s line %d on shard %d = %q, want %s with reason containing %q", w.file, w.line, w.shard, got, w.status, w.like)
		}
	}
	malformed, err = os.ReadFile(s.spool.MalformedFile("20251015174140"))
	if err != nil {
		t.Fatal(err)
	}
	if m := string(malformed); !strings.Contains(m, `"line":9`) || !strings.Contains(m, `"line":13`) || !strings.Contains(m, "unknown event_type 7") {
		t.Errorf("malformed file = %s, want lines 9 and 13 with reasons", m)
	}

	// Money and stock, worked out by hand from the lines above.
	balances := []struct {
		shard int
		user  int
		want  string
	}{
		{1, 1, "990.00"},  // 1000 - 2×10 + 10
		{1, 3, "1000.00"}, // 1000 - 10 + 10
		{0, 2, "995.00"},  // 1000 - 5 + 5 - 2×5 + 5
	}
	for _, bl := range balances {
		if got := s.scalar(bl.shard, "SELECT balance FROM user WHERE id = ?", bl.user); got != bl.want {
			t.Errorf("shard %d user %d balance = %s, want %s", bl.shard, bl.user, got, bl.want)
		}
	}
	if got := s.scalar(1, "SELECT count FROM shop WHERE id = 1 AND good_id = 1"); got != "9" {
		t.Errorf("shop 1 good 1 stock = %s, want 9", got)
	}
	if got := s.scalar(0, "SELECT count FROM shop WHERE id = 2 AND good_id = 1"); got != "10" {
		t.Errorf("shop 2 good 1 stock = %s, want 10 (10 - 1 + 1 - 2 + 1 + 1)", got)
	}
	if got := s.scalar(1, "SELECT COUNT(*) FROM shop WHERE id = 1 AND active"); got != "0" {
		t.Errorf("shop 1 has %s active goods after closing, want 0", got)
	}

	// The audit must see tampering: a balance off by a cent, a lost line.
	if _, err := s.shards[1].Exec("UPDATE user SET balance = balance + 0.01 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.shards[0].Exec("DELETE FROM events WHERE source_file = '20251015174140' AND source_line = 6"); err != nil {
		t.Fatal(err)
	}
	rep, err = audit.Run(context.Background(), s.auditSources())
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	rep.Print(&out)
	for _, want := range []string{"shard 1: user 1 balance 990.01 != sum of account transactions 990.00",
		"file 20251015174140 line 6 is not accounted for anywhere"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("audit after tampering:\n%s\nwant it to report %q", out.String(), want)
		}
	}
}
