package capture

// Heartbeats: while streaming, a message every HeartbeatInterval on
// <prefix>.heartbeat, as Debezium's (key {"serverName":..}, value
// {"ts_ms":..}), so that a reader sees the producer alive however quiet
// the shard is.

import (
	"context"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// HeartbeatTopic is the heartbeat topic of prefix.
func HeartbeatTopic(prefix string) string { return prefix + ".heartbeat" }

// TransactionTopic is the transaction metadata topic of prefix.
func TransactionTopic(prefix string) string { return prefix + ".transaction" }

// heartbeats sends a heartbeat through enc at once and then every
// interval until ctx ends; a failed one is logged (the next may succeed).
func (c *Capture) heartbeats(ctx context.Context, enc *Encoder) {
	if c.cfg.HeartbeatInterval <= 0 {
		return
	}
	tick := time.NewTicker(c.cfg.HeartbeatInterval)
	defer tick.Stop()
	topic := HeartbeatTopic(c.cfg.TopicPrefix)
	for {
		if err := c.out.WriteMessages(ctx, enc.Heartbeat(topic, c.cfg.Name, time.Now())); err != nil && ctx.Err() == nil {
			c.log.Warn("heartbeat not sent", "topic", topic, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Heartbeat returns a heartbeat message, as Debezium's: on topic, keyed by
// the producer's name, its value the time.
func (e *Encoder) Heartbeat(topic, name string, now time.Time) kafka.Message {
	var k, v []byte
	if e.keySchemas {
		k = append(k, heartbeatKeySchema...)
	}
	k = append(k, `{"serverName":`...)
	k = appendString(k, name)
	k = append(k, '}')
	if e.keySchemas {
		k = append(k, '}')
	}
	if e.withSchema {
		v = append(v, heartbeatValueSchema...)
	}
	v = append(v, `{"ts_ms":`...)
	v = strconv.AppendInt(v, now.UnixMilli(), 10)
	v = append(v, '}')
	if e.withSchema {
		v = append(v, '}')
	}
	return kafka.Message{Topic: topic, Key: k, Value: v}
}
