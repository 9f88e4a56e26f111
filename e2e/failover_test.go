package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/localstack"
)

// Two balance processes share their group's partitions on Apache Kafka
// under load; one is SIGKILLed and stays down: the broker evicts it after
// the session timeout and its partitions move to the survivor, which
// applies every change from then on, and the balances reconcile.
func TestConsumerFailover(t *testing.T) {
	const session = 10 * time.Second
	s := loadStack(t, "kafka", fmt.Sprintf("KAFKA_SESSION_TIMEOUT=%s", session))
	second := &localstack.Process{Name: "balance-2", Bin: filepath.Join(binDir, "balance"), Out: s.procs["balance"].Out,
		Env: append(append([]string(nil), s.procs["balance"].Env...), fmt.Sprintf("SERVER_PORT=%d", freePort(t)))}
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Stop(10 * time.Second) })
	owners := waitGroup(t, s.brokers, "balance", func(o map[string][]int) bool { return len(o) == 2 }, time.Minute)
	t.Logf("two members: %v", owners)

	second.Kill()
	killed := time.Now()
	owners = waitGroup(t, s.brokers, "balance", func(o map[string][]int) bool {
		for _, ps := range o {
			return len(o) == 1 && len(ps) == 3
		}
		return false
	}, session+30*time.Second)
	took := time.Since(killed)
	t.Logf("%s after the kill, one member owns every partition: %v", took.Round(100*time.Millisecond), owners)
	if took > session+10*time.Second {
		t.Errorf("the partitions moved %s after the kill, want within about the session timeout (%s)", took.Round(time.Second), session)
	}
	time.Sleep(10 * time.Second) // more load, on the survivor alone
	s.procs["ingest"].Stop(10 * time.Second)
	delete(s.procs, "ingest")
	s.waitFinished(2 * time.Minute)
	s.reconcile("balance", 2*time.Minute)
}

// waitGroup waits until the group's members (by member id, each with its
// partitions of every topic) satisfy ok, and returns them.
func waitGroup(t *testing.T, brokers []string, group string, ok func(map[string][]int) bool, timeout time.Duration) map[string][]int {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	var last map[string][]int
	for time.Now().Before(deadline) {
		resp, err := cl.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err == nil && len(resp.Groups) == 1 && resp.Groups[0].Error == nil && resp.Groups[0].GroupState == "Stable" {
			last = map[string][]int{}
			for _, m := range resp.Groups[0].Members {
				last[m.MemberID] = []int{}
				for _, tp := range m.MemberAssignments.Topics {
					last[m.MemberID] = append(last[m.MemberID], tp.Partitions...)
				}
				slices.Sort(last[m.MemberID])
			}
			if ok(last) {
				return last
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("group %s never got there within %s; last seen %v", group, timeout, last)
	return nil
}
