package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A return recorded pending, then the shard's worker down for longer than
// pending_delay while the file with its purchase arrives: the restarted
// worker applies its backlog before it expires pending returns, so the
// return is settled against its purchase, not rejected as orphaned.
func TestBacklogBeforeExpiry(t *testing.T) {
	s := startStack(t, 2, nil, "WORKER_PENDING_DELAY=2s", "WORKER_INITIAL_BALANCE=1000")
	s.produce("20251101000000", []string{
		`{"event_type":0,"payload":{"shop_id":4,"good_id":1,"delta_count":10,"sub_event_type":"restock"},"timestamp":"2025-11-01 00:00:00.000"}`,
		`{"event_type":2,"payload":{"shop_id":4,"good_id":1,"new_price":"2.00"},"timestamp":"2025-11-01 00:00:00.001"}`,
		`{"event_type":3,"payload":{"order_id":77,"user_id":3,"shop_id":4,"good_id":1,"qty":1},"timestamp":"2025-11-01 00:00:00.002"}`,
	})
	s.waitFinished(time.Minute)
	if got := s.scalar(0, "SELECT status FROM events WHERE order_id = 77"); got != "pending" {
		t.Fatalf("the return is %s, want pending", got)
	}
	s.procs["shard-worker-0"].Stop(10 * time.Second)
	s.produce("20251101000001", []string{
		`{"event_type":1,"payload":{"order_id":77,"user_id":3,"shop_id":4,"good_id":1,"qty":2},"timestamp":"2025-11-01 00:00:01.000"}`,
	})
	time.Sleep(3 * time.Second) // longer than pending_delay
	if err := s.procs["shard-worker-0"].Start(); err != nil {
		t.Fatal(err)
	}
	s.waitFinished(time.Minute)
	if got := s.scalar(0, "SELECT GROUP_CONCAT(event_type, ':', status ORDER BY id) FROM events WHERE order_id = 77"); got != "3:applied,1:applied" {
		t.Errorf("return and purchase of order 77 = %s, want both applied (the return settled by the backlog's purchase)", got)
	}
	s.audit()
}

// A second shard-splitter on the same splitter_db refuses to start: the
// order index and held returns assume a single splitter.
func TestSecondSplitterRefused(t *testing.T) {
	s := startStack(t, 2, nil)
	s.waitReady("shard-splitter") // the first holds the lock
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "shard-splitter"))
	cmd.Env = append(cmd.Environ(), s.procs["shard-splitter"].Env...)
	cmd.Env = append(cmd.Env, "SERVER_PORT="+itoa(freePort(t)))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another process holds the lock") {
		t.Errorf("a second splitter: %v\n%s\nwant it to refuse, naming the lock", err, out)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
