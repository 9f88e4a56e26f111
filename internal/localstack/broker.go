package localstack

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/shopledger/shopledger/internal/topics"
)

// Broker is the embedded Kafka-protocol broker of the local stack: franz-go's
// kfake, a real broker in-process that stock clients (kcat, kafka-go,
// franz-go) talk to. With a data folder its topics and offsets survive a
// restart. Production runs real Kafka.
type Broker struct {
	cluster *kfake.Cluster
}

// StartBroker listens on 127.0.0.1:port (0 picks a free port), keeps its
// data in dir (none if empty) and creates specs up front: topics created on
// first use are not persisted by kfake.
func StartBroker(ctx context.Context, port int, dir string, specs ...topics.Spec) (*Broker, error) {
	opts := []kfake.Opt{kfake.NumBrokers(1)}
	if port != 0 {
		opts = append(opts, kfake.Ports(port))
	}
	if dir != "" {
		opts = append(opts, kfake.DataDir(dir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded Kafka broker: %w", err)
	}
	b := &Broker{cluster: c}
	if len(specs) > 0 {
		if err := topics.Ensure(ctx, b.Addrs(), specs...); err != nil {
			c.Close()
			return nil, err
		}
	}
	return b, nil
}

// Addrs lists the broker's listen addresses.
func (b *Broker) Addrs() []string { return b.cluster.ListenAddrs() }

// Close stops the broker, flushing its data folder.
func (b *Broker) Close() { b.cluster.Close() }
