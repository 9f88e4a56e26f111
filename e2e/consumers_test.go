package e2e

import (
	"bufio"
	"context"
	"database/sql"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/localstack"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// The consumers' topics and the state each keeps, for the checks below.
var consumers = map[string]struct {
	topics []string
	db     string
	state  []string // queries whose rows are the consumer's whole state
}{
	"balance": {[]string{"shop.account_transaction"}, "balance_db", []string{
		"SELECT CONCAT_WS(' ', user_id, balance, credits, debits, tx_count) FROM balance ORDER BY user_id",
		"SELECT CONCAT_WS(' ', user_id, shard, balance, credits, debits, tx_count) FROM shard_balance ORDER BY user_id, shard"}},
	"cache": {[]string{"shop.shop", "shop.shop_state", "shop.events"}, "cache_db", []string{
		"SELECT CONCAT_WS(' ', shop_id, good_id, count, price, price_version) FROM stock ORDER BY shop_id, good_id",
		"SELECT CONCAT_WS(' ', shop_id, active, active_version) FROM shop_status ORDER BY shop_id",
		"SELECT CONCAT_WS(' ', shop_id, shard, event_type, status, n) FROM event_count ORDER BY shop_id, shard, event_type, status"}},
}

// command runs a component's binary with the component's environment.
func (s *stack) command(name string, args ...string) (string, error) {
	p := s.procs[name]
	cmd := exec.Command(p.Bin, args...)
	cmd.Env = append(os.Environ(), p.Env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// reconcile runs `<name> reconcile --wait` and fails the test on any
// difference left after wait.
func (s *stack) reconcile(name string, wait time.Duration) {
	s.t.Helper()
	out, err := s.command(name, "reconcile", "--wait", wait.String())
	if err != nil {
		s.t.Fatalf("%s reconcile: %v\n%s", name, err, tail(out, 4000))
	}
	s.t.Logf("%s reconcile: %s", name, strings.TrimSpace(tail(out, 200)))
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// env returns the value of key in a component's environment.
func (s *stack) env(name, key string) string {
	v := ""
	for _, e := range s.procs[name].Env {
		if k, val, _ := strings.Cut(e, "="); k == key {
			v = val
		}
	}
	return v
}

// waitReady waits until a component answers /ready.
func (s *stack) waitReady(name string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := localstack.WaitHTTP(ctx, "http://127.0.0.1:"+s.env(name, "SERVER_PORT")+"/ready"); err != nil {
		s.t.Fatalf("%s: %v", name, err)
	}
}

// changes reads a consumer's shopledger_consumer_changes_total by result.
func (s *stack) changes(name string) (map[string]float64, error) {
	resp, err := http.Get("http://127.0.0.1:" + s.env(name, "SERVER_PORT") + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, `shopledger_consumer_changes_total{`); ok {
			_, rest, _ = strings.Cut(rest, `result="`)
			res, val, _ := strings.Cut(rest, `"} `)
			out[res], _ = strconv.ParseFloat(val, 64)
		}
	}
	return out, sc.Err()
}

// messages counts the messages in topics.
func (s *stack) messages(topics []string) int64 {
	s.t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(s.brokers...)}
	ctx := context.Background()
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		s.t.Fatal(err)
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range md.Topics {
		for _, p := range t.Partitions {
			req.Topics[t.Name] = append(req.Topics[t.Name], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
		}
	}
	resp, err := cl.ListOffsets(ctx, req)
	if err != nil {
		s.t.Fatal(err)
	}
	var n int64
	for _, ps := range resp.Topics {
		for _, p := range ps {
			n += p.LastOffset - p.FirstOffset
		}
	}
	return n
}

// state renders a consumer's whole state.
func (s *stack) state(name string) string {
	s.t.Helper()
	db, err := sqldb.Open(sqldb.Config{Addr: s.layout.ControlAddr(), User: "root", Database: consumers[name].db})
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	for _, q := range consumers[name].state {
		err := sqldb.Each(context.Background(), db, q, func(r *sql.Rows) error {
			var v string
			if err := r.Scan(&v); err != nil {
				return err
			}
			b.WriteString(v + "\n")
			return nil
		})
		if err != nil {
			s.t.Fatal(err)
		}
	}
	return b.String()
}

// replayAll stops a consumer, resets its group to the first offsets,
// restarts it, waits until it has handled every message of its topics
// again, and fails the test if that applied anything or changed its state.
func (s *stack) replayAll(name string) {
	s.t.Helper()
	before := s.state(name)
	p := s.procs[name]
	p.Stop(15 * time.Second)
	if out, err := s.command(name, "reset-offsets"); err != nil {
		s.t.Fatalf("%s reset-offsets: %v\n%s", name, err, out)
	}
	total := s.messages(consumers[name].topics)
	if err := p.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c, err := s.changes(name)
		if err == nil && c["applied"]+c["duplicate"]+c["superseded"]+c["dead_letter"]+c["tombstone"] >= float64(total) {
			if c["applied"] != 0 || c["dead_letter"] != 0 {
				s.t.Errorf("%s after a reset to the first offsets: %v, want every change a duplicate", name, c)
			}
			break
		}
		if time.Now().After(deadline) {
			resp, _ := http.Get("http://127.0.0.1:" + s.env(name, "SERVER_PORT") + "/metrics")
			var lags []string
			if resp != nil {
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					if strings.HasPrefix(sc.Text(), "shopledger_consumer_lag") {
						lags = append(lags, sc.Text())
					}
				}
				resp.Body.Close()
			}
			s.t.Fatalf("%s handled %v of %d messages after a reset (err %v); lags %v", name, c, total, err, lags)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if after := s.state(name); after != before {
		s.t.Errorf("%s state changed by consuming everything again (%d bytes before, %d after)", name, len(before), len(after))
	}
	s.t.Logf("%s: %d messages consumed again, state unchanged", name, total)
}
