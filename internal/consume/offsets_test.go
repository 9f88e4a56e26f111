package consume_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shopledger/shopledger/internal/consume"
	"github.com/shopledger/shopledger/internal/localkafka"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/internal/topics"
)

// The topics of the reset tests: partitions with different numbers of
// messages (one empty), each message 10 ms after the one before from base.
var (
	base   = time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	counts = map[string][]int{"reset.a": {40, 25, 0}, "reset.b": {60, 33}}
)

func at(i int) time.Time { return base.Add(time.Duration(i) * 10 * time.Millisecond) }

// resetCluster starts Apache Kafka with the reset topics filled, and
// commits offsets for group "all" on every partition and for group "some"
// on all but reset.a[1].
func resetCluster(t *testing.T) []string {
	t.Helper()
	brokers := stacktest.Kafka(t, 1).Brokers()
	ctx := context.Background()
	var specs []topics.Spec
	for _, name := range slices.Sorted(maps.Keys(counts)) {
		specs = append(specs, topics.Spec{Name: name, Partitions: len(counts[name]), ReplicationFactor: 1})
	}
	if err := topics.Ensure(ctx, brokers, specs...); err != nil {
		t.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Balancer: byPartition{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	var msgs []kafka.Message
	for name, ps := range counts {
		for p, n := range ps {
			for i := range n {
				msgs = append(msgs, kafka.Message{Topic: name, Key: []byte(strconv.Itoa(p)), Value: []byte(strconv.Itoa(i)), Time: at(i)})
			}
		}
	}
	for attempt := 0; ; attempt++ { // the new topics' leaders may not be elected yet
		err := w.WriteMessages(ctx, msgs...)
		if err == nil {
			break
		}
		if attempt == 50 {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, group := range []string{"all", "some"} {
		var plan []consume.Planned
		for name, ps := range counts {
			for p, n := range ps {
				if group != "some" || name != "reset.a" || p != 1 {
					plan = append(plan, consume.Planned{Topic: name, Partition: p, New: int64(n / 2)})
				}
			}
		}
		if err := consume.CommitPlan(ctx, brokers, group, plan); err != nil {
			t.Fatal(err)
		}
	}
	return brokers
}

// byPartition sends a message to the partition its key names.
type byPartition struct{}

func (byPartition) Balance(m kafka.Message, _ ...int) int {
	p, _ := strconv.Atoi(string(m.Key))
	return p
}

// kafkaConsumerGroups runs Kafka's own ConsumerGroupCommand with
// --reset-offsets ... --dry-run --export and returns its plan by
// "topic[partition]", or its error output when it fails.
func kafkaConsumerGroups(t *testing.T, home string, brokers []string, group string, args ...string) (map[string]int64, error) {
	t.Helper()
	args = append([]string{"--bootstrap-server", brokers[0], "--group", group, "--reset-offsets", "--dry-run", "--export"}, args...)
	for _, name := range slices.Sorted(maps.Keys(counts)) {
		args = append(args, "--topic", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd, err := localkafka.Tool(ctx, home, localkafka.ConsumerGroupCommand, args...)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()+stdout.String()))
	}
	plan := map[string]int64{}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if line == "" || strings.HasPrefix(line, "Warn: ") { // "Partition 2 from topic reset.a is empty. Falling back to latest known offset."
			continue
		}
		f := strings.Split(line, ",") // topic,partition,offset
		if len(f) != 3 {
			t.Fatalf("kafka-consumer-groups answered %q", stdout.String())
		}
		off, _ := strconv.ParseInt(f[2], 10, 64)
		plan[f[0]+"["+f[1]+"]"] = off
	}
	return plan, nil
}

// deleteRecords deletes the messages of topic[partition] before offset, as
// retention does.
func deleteRecords(t *testing.T, brokers []string, topic string, partition int32, offset int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = partition, offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics, req.TimeoutMillis = append(req.Topics, rt), 10000
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				t.Fatalf("delete records of %s[%d]: %v", rt.Topic, rp.Partition, err)
			}
		}
	}
}

func ourPlan(plan []consume.Planned) map[string]int64 {
	out := map[string]int64{}
	for _, p := range plan {
		out[fmt.Sprintf("%s[%d]", p.Topic, p.Partition)] = p.New
	}
	return out
}

// reset-offsets --to-datetime and --shift-by land where Apache Kafka's own
// kafka-consumer-groups (ConsumerGroupCommand of kafka-tools 4.1.1) lands
// on the same group: before, at, between and after the messages' times, an
// empty partition, shifts back and forth beyond both ends, a partition
// whose first messages were deleted; a shift of a group with a partition
// without committed offset is refused by both.
func TestResetOffsetsAsKafkaConsumerGroups(t *testing.T) {
	brokers := resetCluster(t)
	home := stacktest.KafkaTools(t)
	ctx := context.Background()
	names := slices.Sorted(maps.Keys(counts))
	deleteRecords(t, brokers, "reset.b", 1, 5) // its log starts at 5
	ms := func(tm time.Time) string { return tm.UTC().Format("2006-01-02T15:04:05.000Z") }
	for _, tc := range []struct {
		name  string
		r     consume.Reset
		group string
		args  []string
	}{
		{"earliest", consume.Reset{To: consume.ToEarliest}, "all", []string{"--to-earliest"}},
		{"datetime before every message", consume.Reset{To: consume.ToDatetime, At: base.Add(-time.Hour)}, "all", []string{"--to-datetime", ms(base.Add(-time.Hour))}},
		{"datetime of the 20th message", consume.Reset{To: consume.ToDatetime, At: at(20)}, "all", []string{"--to-datetime", ms(at(20))}},
		{"datetime between messages", consume.Reset{To: consume.ToDatetime, At: at(30).Add(-3 * time.Millisecond)}, "all",
			[]string{"--to-datetime", ms(at(30).Add(-3 * time.Millisecond))}},
		{"datetime in another zone", consume.Reset{To: consume.ToDatetime, At: at(10)}, "some",
			[]string{"--to-datetime", at(10).In(time.FixedZone("", 3*3600)).Format("2006-01-02T15:04:05.000-07:00")}},
		{"datetime after every message", consume.Reset{To: consume.ToDatetime, At: at(1000)}, "all", []string{"--to-datetime", ms(at(1000))}},
		{"shift forward", consume.Reset{To: consume.ShiftBy, Shift: 7}, "all", []string{"--shift-by", "7"}},
		{"shift back", consume.Reset{To: consume.ShiftBy, Shift: -12}, "all", []string{"--shift-by", "-12"}},
		{"shift beyond the end", consume.Reset{To: consume.ShiftBy, Shift: 1000}, "all", []string{"--shift-by", "1000"}},
		{"shift before the start", consume.Reset{To: consume.ShiftBy, Shift: -1000}, "all", []string{"--shift-by", "-1000"}},
		{"shift without a committed offset", consume.Reset{To: consume.ShiftBy, Shift: 1}, "some", []string{"--shift-by", "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, kerr := kafkaConsumerGroups(t, home, brokers, tc.group, tc.args...)
			plan, err := consume.PlanReset(ctx, brokers, tc.group, names, tc.r)
			if kerr != nil || err != nil {
				if kerr == nil || !errors.Is(err, consume.ErrNoCommittedOffset) {
					t.Fatalf("PlanReset = %v; kafka-consumer-groups: %v", err, kerr)
				}
				t.Logf("both refuse: %v; kafka-consumer-groups: %.200s", err, kerr)
				return
			}
			if got := ourPlan(plan); !maps.Equal(got, want) {
				t.Errorf("PlanReset(%+v) = %v, want kafka-consumer-groups' %v", tc.r, got, want)
			}
		})
	}
	// Kafka timestamps are milliseconds: a time within a millisecond after
	// a message's is after that message.
	plan, err := consume.PlanReset(ctx, brokers, "all", names, consume.Reset{To: consume.ToDatetime, At: at(20).Add(300 * time.Microsecond)})
	if err != nil {
		t.Fatal(err)
	}
	if got := ourPlan(plan)["reset.a[0]"]; got != 21 {
		t.Errorf("--to-datetime 0.3 ms after message 20: reset.a[0] to %d, want 21", got)
	}
}

// A reset is committed where it was planned; while the group has a member,
// planning it is refused; a rebuild is refused from topics that no longer
// start at offset 0.
func TestResetOffsetsCommitAndRefusals(t *testing.T) {
	brokers := resetCluster(t)
	ctx := context.Background()
	names := slices.Sorted(maps.Keys(counts))
	plan, err := consume.PlanReset(ctx, brokers, "all", names, consume.Reset{To: consume.ToDatetime, At: at(15)})
	if err != nil {
		t.Fatal(err)
	}
	if err := consume.CommitPlan(ctx, brokers, "all", plan); err != nil {
		t.Fatal(err)
	}
	now, err := consume.PlanReset(ctx, brokers, "all", names, consume.Reset{To: consume.ShiftBy})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range now {
		if p.Current != plan[i].New {
			t.Errorf("%s[%d] committed at %d after the reset, want %d", p.Topic, p.Partition, p.Current, plan[i].New)
		}
	}

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, GroupID: "all", GroupTopics: names, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	go r.ReadMessage(ctx) // joins the group
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := consume.PlanReset(ctx, brokers, "all", names, consume.Reset{})
		if errors.Is(err, consume.ErrGroupActive) {
			t.Logf("with a member: %v", err)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PlanReset with a member in the group = %v, want ErrGroupActive", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	deleteRecords(t, brokers, "reset.a", 0, 3)
	cfg := consume.Config{Brokers: brokers, Group: "rebuilder", Topics: names}
	_, err = consume.Rebuild[int](ctx, cfg, nil, nil, consume.RebuildOptions{}, nil)
	if !errors.Is(err, consume.ErrTruncated) || !strings.Contains(err.Error(), "reset.a[0] starts at offset 3") {
		t.Errorf("Rebuild from a topic whose first messages were deleted = %v, want ErrTruncated naming reset.a[0]", err)
	}
}
