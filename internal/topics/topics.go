// Package topics creates the Kafka topics shopledger uses, up front: topics
// auto-created on first use get the broker's defaults (and are not
// persisted by the embedded broker).
package topics

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/segmentio/kafka-go"
)

// Spec describes one topic.
type Spec struct {
	Name       string
	Partitions int
	Compacted  bool // cleanup.policy=compact, for keyed state such as checkpoints
}

// Ensure creates every topic that does not exist yet; existing topics are
// left as they are.
func Ensure(ctx context.Context, brokers []string, specs ...Spec) error {
	var d kafka.Dialer
	conn, err := d.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return fmt.Errorf("kafka %s: %w", brokers[0], err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("kafka controller: %w", err)
	}
	cconn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return fmt.Errorf("kafka controller %s:%d: %w", ctrl.Host, ctrl.Port, err)
	}
	defer cconn.Close()
	cfgs := make([]kafka.TopicConfig, 0, len(specs))
	for _, s := range specs {
		c := kafka.TopicConfig{Topic: s.Name, NumPartitions: s.Partitions, ReplicationFactor: 1}
		if s.Compacted {
			c.ConfigEntries = []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}
		}
		cfgs = append(cfgs, c)
	}
	if err := cconn.CreateTopics(cfgs...); err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	return nil
}
