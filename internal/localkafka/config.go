package localkafka

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/shopledger/shopledger/internal/freeport"
)

// log4jConfig is written to <Dir>/log4j2.properties at every start, so the
// logging of a running cluster always follows this file.
//
//go:embed log4j2.properties
var log4jConfig []byte

// resolve fills in the defaults and free ports and makes Dir absolute.
func (o Options) resolve() (Options, error) {
	var err error
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return o, err
	}
	if o.Home, err = filepath.Abs(o.Home); err != nil {
		return o, err
	}
	if o.Name == "" {
		o.Name = "kafka"
	}
	if o.Nodes == 0 {
		o.Nodes = max(1, len(o.Ports))
	}
	if len(o.Ports) > o.Nodes || len(o.ControllerPorts) > o.Nodes {
		return o, fmt.Errorf("%s: %d broker and %d controller ports for %d nodes", o.Name, len(o.Ports), len(o.ControllerPorts), o.Nodes)
	}
	if o.Heap == "" {
		o.Heap = "384m"
	}
	o.Ports = append(o.Ports, make([]int, o.Nodes-len(o.Ports))...)
	o.ControllerPorts = append(o.ControllerPorts, make([]int, o.Nodes-len(o.ControllerPorts))...)
	var unset []*int
	for i := range o.Nodes {
		for _, p := range []*int{&o.Ports[i], &o.ControllerPorts[i]} {
			if *p == 0 {
				unset = append(unset, p)
			}
		}
	}
	free, err := freeport.Pick(len(unset))
	if err != nil {
		return o, err
	}
	for i, p := range unset {
		*p = free[i]
	}
	return o, nil
}

func portFree(port int) error {
	l, err := net.Listen("tcp", addr(port))
	if err != nil {
		return fmt.Errorf("%w: %d (is another stack running?): %w", ErrPortTaken, port, err)
	}
	return l.Close()
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// clusterID returns the KRaft cluster id kept in dir/cluster.id, creating it
// on first use: every node of a cluster must be formatted with the same id,
// also one added or wiped later.
func clusterID(dir string) (string, error) {
	path := filepath.Join(dir, "cluster.id")
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	// Like Kafka's own Uuid.randomUuid, never start with '-': command lines
	// such as `kafka-storage format -t <id>` would read it as an option.
	id := "-"
	for strings.HasPrefix(id, "-") {
		raw := make([]byte, 16)
		if _, err := rand.Read(raw); err != nil {
			return "", err
		}
		id = base64.RawURLEncoding.EncodeToString(raw)
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("cluster id: %w", err)
	}
	return id, nil
}

// serverProperties renders node i's configuration: combined broker and
// controller, a static controller quorum of every node, replication of the
// internal topics at min(3, Nodes), and no auto-created topics (the product
// creates its topics up front, as in production). Options.Properties
// override these.
func (o Options) serverProperties(i int, logDir string) []byte {
	voters := make([]string, o.Nodes)
	for j := range o.Nodes {
		voters[j] = fmt.Sprintf("%d@%s", j+1, addr(o.ControllerPorts[j]))
	}
	rf := strconv.Itoa(min(3, o.Nodes))
	props := [][2]string{
		{"process.roles", "broker,controller"},
		{"node.id", strconv.Itoa(i + 1)},
		{"controller.quorum.voters", strings.Join(voters, ",")},
		{"listeners", "PLAINTEXT://" + addr(o.Ports[i]) + ",CONTROLLER://" + addr(o.ControllerPorts[i])},
		{"advertised.listeners", "PLAINTEXT://" + addr(o.Ports[i])},
		{"controller.listener.names", "CONTROLLER"},
		{"listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"},
		{"inter.broker.listener.name", "PLAINTEXT"},
		{"log.dirs", logDir},
		{"auto.create.topics.enable", "false"},
		{"group.initial.rebalance.delay.ms", "0"},
		{"offsets.topic.replication.factor", rf},
		{"transaction.state.log.replication.factor", rf},
		{"transaction.state.log.min.isr", strconv.Itoa(min(2, o.Nodes))},
		{"default.replication.factor", rf},
		{"min.insync.replicas", "1"}, // topics set their own
		{"num.partitions", "1"},
	}
	var b bytes.Buffer
	b.WriteString("# Written by localkafka at every start; set Options.Properties instead of editing.\n")
	for _, p := range props {
		if v, ok := o.Properties[p[0]]; ok {
			p[1] = v
		}
		fmt.Fprintf(&b, "%s=%s\n", p[0], p[1])
	}
	extra := make([]string, 0, len(o.Properties))
	for k := range o.Properties {
		if !defaultKey(props, k) {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		fmt.Fprintf(&b, "%s=%s\n", k, o.Properties[k])
	}
	return b.Bytes()
}

func defaultKey(props [][2]string, k string) bool {
	for _, p := range props {
		if p[0] == k {
			return true
		}
	}
	return false
}
