package consume

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/internal/retry"
)

// A consumer group's offsets: where its members start reading. PlanReset
// and CommitPlan move them as `kafka-consumer-groups --reset-offsets` does,
// for an inactive group only; rebuild reads the partitions' ranges here too.
//
// Moving offsets back is harmless for our consumers: the watermarks skip
// every change applied before, so nothing is applied twice (and nothing is
// applied again either: to apply the changes again, rebuild). Moving them
// forward, past what the group consumed, skips changes for good: later
// changes of the same partition move its watermark past them, so not even a
// reset back applies them afterwards; only a rebuild does. Plan rows count
// those (Skipped).

// ResetTo is where a reset moves a group's offsets.
type ResetTo int

// The resets of kafka-consumer-groups that reset-offsets offers.
const (
	// ToEarliest moves every partition to its first offset (log start).
	ToEarliest ResetTo = iota
	// ToDatetime moves every partition to the first offset whose
	// timestamp is at or after Reset.At, or to the log end when no message
	// is that recent (kafka-consumer-groups --to-datetime).
	ToDatetime
	// ShiftBy moves every partition's committed offset by Reset.Shift,
	// clamped to the partition's [start, end] (kafka-consumer-groups
	// --shift-by); a partition without a committed offset is refused
	// with ErrNoCommittedOffset, as kafka-consumer-groups refuses it.
	ShiftBy
)

// Reset says where a reset moves the offsets.
type Reset struct {
	To    ResetTo
	At    time.Time // for ToDatetime; Kafka timestamps are milliseconds, a finer At is rounded up
	Shift int64     // for ShiftBy
}

// NoOffset stands for a partition without a committed offset.
const NoOffset int64 = -1

// Planned is one partition of a reset plan.
type Planned struct {
	Topic      string
	Partition  int
	Start, End int64 // the log's first offset and its end (the next offset written)
	Current    int64 // the committed offset; NoOffset when none
	New        int64
}

// Skipped is how many messages the new offset passes over that the group
// has not consumed yet: the changes a reset forward skips for good (see
// above). A partition without a committed offset is read from its start.
func (p Planned) Skipped() int64 {
	from := p.Current
	if from == NoOffset || from < p.Start {
		from = p.Start
	}
	return max(0, p.New-from)
}

func (t tp) String() string { return fmt.Sprintf("%s[%d]", t.topic, t.partition) }

func compareTP(a, b tp) int {
	return cmp.Or(strings.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
}

// transientFor bounds how long transient retries an operation.
const transientFor = 30 * time.Second

// transient runs op again while it fails with an error Kafka calls
// temporary (a leader or group coordinator moving or not elected yet, a
// group loading), for up to transientFor, as Kafka's admin client does.
func transient(ctx context.Context, op func() error) error {
	deadline := time.Now().Add(transientFor)
	wait := retry.Default()
	for {
		err := op()
		var ke kafka.Error
		if err == nil || !errors.As(err, &ke) || !ke.Temporary() || time.Now().After(deadline) || !retry.Sleep(ctx, wait.Next()) {
			return err
		}
	}
}

func client(brokers []string) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
}

// PlanReset returns where r would move group's offsets on every partition
// of topics, in topic and partition order, and what they are now. It
// returns ErrGroupActive while the group has members, whose own commits
// would overwrite the reset, as kafka-consumer-groups refuses then too.
func PlanReset(ctx context.Context, brokers []string, group string, topics []string, r Reset) ([]Planned, error) {
	g, err := stoppedGroup(ctx, brokers, group, topics)
	if err != nil {
		return nil, err
	}
	cl, parts, start, end := g.cl, g.parts, g.start, g.end
	current, err := committed(ctx, cl, group, parts)
	if err != nil {
		return nil, err
	}
	var at map[tp]int64
	if r.To == ToDatetime {
		if at, err = offsetsAt(ctx, cl, parts, r.At); err != nil {
			return nil, err
		}
	}
	plan := make([]Planned, 0, len(parts))
	var uncommitted []string
	for _, p := range parts {
		row := Planned{Topic: p.topic, Partition: p.partition, Start: start[p], End: end[p], Current: current[p]}
		switch r.To {
		case ToEarliest:
			row.New = row.Start
		case ToDatetime:
			row.New = at[p]
			if row.New == NoOffset { // no message that recent: the end
				row.New = row.End
			}
		case ShiftBy:
			if row.Current == NoOffset {
				uncommitted = append(uncommitted, p.String())
				continue
			}
			row.New = min(max(row.Current+r.Shift, row.Start), row.End)
		default:
			return nil, fmt.Errorf("unknown reset %d", r.To)
		}
		plan = append(plan, row)
	}
	if len(uncommitted) > 0 {
		return nil, fmt.Errorf("%w: %s (use --to-earliest or --to-datetime for them)", ErrNoCommittedOffset, strings.Join(uncommitted, ", "))
	}
	return plan, nil
}

// CommitPlan commits the plan's new offsets for group, as an admin
// client does for an inactive group (generation -1). It returns
// ErrGroupActive when the group has got members since the plan was made.
func CommitPlan(ctx context.Context, brokers []string, group string, plan []Planned) error {
	offsets := map[tp]int64{}
	for _, p := range plan {
		offsets[tp{p.Topic, p.Partition}] = p.New
	}
	return commit(ctx, client(brokers), group, offsets)
}

// checkInactive returns ErrGroupActive unless group is Empty or Dead (or
// unknown), the states kafka-consumer-groups resets.
// stopped is what a stopped group's tools see of its topics: every
// partition, with its first and end offsets.
type stopped struct {
	cl         *kafka.Client
	parts      []tp
	start, end map[tp]int64
}

// stoppedGroup reads it, or returns ErrGroupActive while the group has
// members.
func stoppedGroup(ctx context.Context, brokers []string, group string, topics []string) (stopped, error) {
	g := stopped{cl: client(brokers)}
	if err := checkInactive(ctx, g.cl, group); err != nil {
		return g, err
	}
	var err error
	if g.parts, err = partitions(ctx, g.cl, topics); err != nil {
		return g, err
	}
	g.start, g.end, err = bounds(ctx, g.cl, g.parts)
	return g, err
}

func checkInactive(ctx context.Context, cl *kafka.Client, group string) error {
	return transient(ctx, func() error { return describeInactive(ctx, cl, group) })
}

func describeInactive(ctx context.Context, cl *kafka.Client, group string) error {
	resp, err := cl.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return fmt.Errorf("describe group %s: %w", group, err)
	}
	for _, g := range resp.Groups {
		if errors.Is(g.Error, kafka.GroupIdNotFound) {
			continue
		}
		if g.Error != nil {
			return fmt.Errorf("describe group %s: %w", group, g.Error)
		}
		switch g.GroupState {
		case "Empty", "Dead", "":
		default:
			members := make([]string, len(g.Members))
			for i, m := range g.Members {
				members[i] = m.ClientID + "@" + m.ClientHost
			}
			return fmt.Errorf("%w: group %s is %s with %d members (%s)", ErrGroupActive, group, g.GroupState, len(g.Members), strings.Join(members, ", "))
		}
	}
	return nil
}

// partitions lists every partition of topics, in order.
func partitions(ctx context.Context, cl *kafka.Client, topics []string) (out []tp, err error) {
	err = transient(ctx, func() error {
		out, err = listPartitions(ctx, cl, topics)
		return err
	})
	return out, err
}

func listPartitions(ctx context.Context, cl *kafka.Client, topics []string) ([]tp, error) {
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	var out []tp
	for _, t := range md.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			out = append(out, tp{t.Name, p.ID})
		}
	}
	slices.SortFunc(out, compareTP)
	return out, nil
}

// listOffsets asks for one offset per partition, the kind of req(p).
func listOffsets(ctx context.Context, cl *kafka.Client, parts []tp, req func(partition int) kafka.OffsetRequest) (out map[tp]kafka.PartitionOffsets, err error) {
	err = transient(ctx, func() error {
		out, err = listOffsetsOnce(ctx, cl, parts, req)
		return err
	})
	return out, err
}

func listOffsetsOnce(ctx context.Context, cl *kafka.Client, parts []tp, req func(partition int) kafka.OffsetRequest) (map[tp]kafka.PartitionOffsets, error) {
	r := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, p := range parts {
		r.Topics[p.topic] = append(r.Topics[p.topic], req(p.partition))
	}
	resp, err := cl.ListOffsets(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	out := map[tp]kafka.PartitionOffsets{}
	for t, ps := range resp.Topics {
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("list offsets of %s[%d]: %w", t, p.Partition, p.Error)
			}
			out[tp{t, p.Partition}] = p
		}
	}
	for _, p := range parts {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("list offsets: no answer for %s", p)
		}
	}
	return out, nil
}

// bounds returns every partition's first offset and end.
func bounds(ctx context.Context, cl *kafka.Client, parts []tp) (start, end map[tp]int64, err error) {
	first, err := listOffsets(ctx, cl, parts, kafka.FirstOffsetOf)
	if err != nil {
		return nil, nil, err
	}
	last, err := listOffsets(ctx, cl, parts, kafka.LastOffsetOf)
	if err != nil {
		return nil, nil, err
	}
	start, end = map[tp]int64{}, map[tp]int64{}
	for _, p := range parts {
		start[p], end[p] = first[p].FirstOffset, last[p].LastOffset
	}
	return start, end, nil
}

// offsetsAt returns, per partition, the first offset whose timestamp is at
// or after at, or NoOffset when there is none.
func offsetsAt(ctx context.Context, cl *kafka.Client, parts []tp, at time.Time) (map[tp]int64, error) {
	ms := at.UnixMilli()
	if at.Sub(time.UnixMilli(ms)) > 0 {
		ms++ // a message of that millisecond is older than at
	}
	byTime, err := listOffsets(ctx, cl, parts, func(p int) kafka.OffsetRequest { return kafka.OffsetRequest{Partition: p, Timestamp: ms} })
	if err != nil {
		return nil, err
	}
	out := map[tp]int64{}
	for p, o := range byTime {
		out[p] = NoOffset
		for off := range o.Offsets { // one: the answer (-1 when none)
			out[p] = max(off, NoOffset)
		}
	}
	return out, nil
}

// committed returns the group's committed offset per partition, NoOffset
// when none.
func committed(ctx context.Context, cl *kafka.Client, group string, parts []tp) (out map[tp]int64, err error) {
	err = transient(ctx, func() error {
		out, err = fetchCommitted(ctx, cl, group, parts)
		return err
	})
	return out, err
}

func fetchCommitted(ctx context.Context, cl *kafka.Client, group string, parts []tp) (map[tp]int64, error) {
	req := &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{}}
	for _, p := range parts {
		req.Topics[p.topic] = append(req.Topics[p.topic], p.partition)
	}
	resp, err := cl.OffsetFetch(ctx, req)
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		return nil, fmt.Errorf("committed offsets of group %s: %w", group, err)
	}
	out := map[tp]int64{}
	for _, p := range parts {
		out[p] = NoOffset
	}
	for t, ps := range resp.Topics {
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("committed offset of group %s on %s[%d]: %w", group, t, p.Partition, p.Error)
			}
			if p.CommittedOffset >= 0 {
				out[tp{t, p.Partition}] = p.CommittedOffset
			}
		}
	}
	return out, nil
}

// commit commits offsets for group as a non-member (generation -1), which
// the broker accepts for an inactive group only.
func commit(ctx context.Context, cl *kafka.Client, group string, offsets map[tp]int64) error {
	return transient(ctx, func() error { return commitOnce(ctx, cl, group, offsets) })
}

func commitOnce(ctx context.Context, cl *kafka.Client, group string, offsets map[tp]int64) error {
	req := &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{}}
	for _, p := range slices.SortedFunc(maps.Keys(offsets), compareTP) {
		req.Topics[p.topic] = append(req.Topics[p.topic], kafka.OffsetCommit{Partition: p.partition, Offset: offsets[p]})
	}
	resp, err := cl.OffsetCommit(ctx, req)
	if err != nil {
		return fmt.Errorf("commit offsets of group %s: %w", group, err)
	}
	for t, ps := range resp.Topics {
		for _, p := range ps {
			switch {
			case errors.Is(p.Error, kafka.UnknownMemberId), errors.Is(p.Error, kafka.IllegalGeneration), errors.Is(p.Error, kafka.RebalanceInProgress):
				return fmt.Errorf("%w: group %s (%v)", ErrGroupActive, group, p.Error)
			case p.Error != nil:
				return fmt.Errorf("commit offset of group %s on %s[%d]: %w", group, t, p.Partition, p.Error)
			}
		}
	}
	return nil
}
