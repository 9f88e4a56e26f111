package consume

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// ErrGroupActive is returned by ResetOffsets while the group has members.
var ErrGroupActive = errors.New("the consumer group has active members: stop them first")

// ResetOffsets sets the group's committed offset of every partition of
// topics to the partition's first offset, so that the next member consumes
// everything again. The group must be empty.
func ResetOffsets(ctx context.Context, brokers []string, group string, topics []string) (int, error) {
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return 0, fmt.Errorf("metadata: %w", err)
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range md.Topics {
		if t.Error != nil {
			return 0, fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			req.Topics[t.Name] = append(req.Topics[t.Name], kafka.FirstOffsetOf(p.ID))
		}
	}
	offs, err := cl.ListOffsets(ctx, req)
	if err != nil {
		return 0, fmt.Errorf("list offsets: %w", err)
	}
	commit := &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{}}
	n := 0
	for t, ps := range offs.Topics {
		for _, p := range ps {
			if p.Error != nil {
				return 0, fmt.Errorf("list offsets %s[%d]: %w", t, p.Partition, p.Error)
			}
			commit.Topics[t] = append(commit.Topics[t], kafka.OffsetCommit{Partition: p.Partition, Offset: p.FirstOffset})
			n++
		}
	}
	resp, err := cl.OffsetCommit(ctx, commit)
	if err != nil {
		return 0, fmt.Errorf("commit offsets: %w", err)
	}
	for t, ps := range resp.Topics {
		for _, p := range ps {
			if errors.Is(p.Error, kafka.UnknownMemberId) || errors.Is(p.Error, kafka.IllegalGeneration) || errors.Is(p.Error, kafka.RebalanceInProgress) {
				return 0, fmt.Errorf("group %s: %w", group, ErrGroupActive)
			}
			if p.Error != nil {
				return 0, fmt.Errorf("commit offset %s[%d]: %w", t, p.Partition, p.Error)
			}
		}
	}
	return n, nil
}
