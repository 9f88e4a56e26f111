// Package localkafka installs Apache Kafka and runs it locally in KRaft mode,
// each node both broker and controller, as one broker or a small cluster,
// for the local stack (`make run BROKER=kafka`) and for integration tests.
// A cluster keeps its data in its own directory, so a second start resumes
// on the same data.
package localkafka

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sync/errgroup"
)

// Options describe one cluster.
type Options struct {
	Name string // used in errors; "kafka" when empty
	Home string // the install (see Install and DefaultDir), holding libs/
	// Dir holds cluster.id, log4j2.properties and a folder per node, node<id>/,
	// with server.properties, data/ and broker.log.
	Dir   string
	Nodes int // number of nodes; len(Ports), at least 1, when 0
	// Ports are the nodes' broker ports on 127.0.0.1; a missing or 0 entry
	// gets a free port.
	Ports []int
	// ControllerPorts are the nodes' KRaft controller ports, chosen likewise.
	ControllerPorts []int
	Heap            string // each node's java -Xmx; "384m" when empty
	// Properties are extra server properties; they override the defaults.
	Properties map[string]string
}

// Cluster is a running set of nodes. Node i (from 0) has node.id i+1. Its
// methods are not safe for concurrent use.
type Cluster struct {
	Options // as started: paths absolute, Nodes, Ports and ControllerPorts set
	id      string
	java    string
	nodes   []*node
	version string
}

// Start formats the storage of nodes that have none yet, starts every node
// and waits until each serves: its Metadata lists all nodes as brokers. It
// returns ErrNoJava without java, ErrNotInstalled when Home holds no finished
// install, ErrPortTaken when a port is in use, and ErrExited or ErrNotReady
// when a node fails to come up; then no node is left running.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, ErrNoJava
	}
	if o, err = o.resolve(); err != nil {
		return nil, err
	}
	if !finished(o.Home) {
		return nil, fmt.Errorf("%s: %w", o.Home, ErrNotInstalled)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	c := &Cluster{Options: o, java: java}
	if c.id, err = clusterID(o.Dir); err != nil {
		return nil, err
	}
	if err := os.WriteFile(c.log4jPath(), log4jConfig, 0o644); err != nil {
		return nil, err
	}
	for i := range o.Nodes {
		c.nodes = append(c.nodes, c.newNode(i))
	}
	// Format in parallel: each format is a JVM start of its own.
	g, gctx := errgroup.WithContext(ctx)
	for i := range c.nodes {
		g.Go(func() error { return c.prepare(gctx, i) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i := range c.nodes {
		if err := c.launch(i); err != nil {
			c.killAll()
			return nil, err
		}
	}
	for i := range c.nodes {
		if err := c.waitServing(ctx, i); err != nil {
			c.killAll()
			return nil, err
		}
	}
	c.version = c.readVersion()
	return c, nil
}

// Brokers are the bootstrap addresses, host:port, one per node.
func (c *Cluster) Brokers() []string {
	addrs := make([]string, len(c.Ports))
	for i, p := range c.Ports {
		addrs[i] = addr(p)
	}
	return addrs
}

// Version is the Kafka version the nodes reported at start-up, or "" when
// their logs do not say.
func (c *Cluster) Version() string { return c.version }

// Start starts node i again, on its data and ports, after Kill or Stop, and
// waits until it serves. The controller takes the node back only once its
// previous broker session has expired (broker.session.timeout.ms, 9 s by
// default), and the other nodes learn of it from the metadata log a moment
// later: until then, after a crash, they may still list its old incarnation.
// It returns nil at once when the node is running, and the errors of the
// package-level Start otherwise.
func (c *Cluster) Start(ctx context.Context, i int) error {
	if c.nodes[i].running() {
		return nil
	}
	if err := c.prepare(ctx, i); err != nil {
		return err
	}
	if err := c.launch(i); err != nil {
		return err
	}
	if err := c.waitServing(ctx, i); err != nil {
		c.Kill(i)
		return err
	}
	return nil
}

// Restart stops node i cleanly if it runs, then starts it as Start does.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	if err := c.nodes[i].stop(); err != nil {
		return fmt.Errorf("%s: %w", c.nodeName(i), err)
	}
	return c.Start(ctx, i)
}

// Kill ends node i at once, as a crash would, and waits for its process to
// exit. Killing a stopped node does nothing.
func (c *Cluster) Kill(i int) { c.nodes[i].kill() }

// Stop shuts every node down cleanly: SIGTERM to all, then up to 30 s for
// each to exit before it is killed, which Stop reports as ErrStopTimeout.
// Stopped nodes can be started again with Cluster.Start.
func (c *Cluster) Stop() error {
	// All at once: stopped one by one, the last node of a quorum waits for
	// controllers that are gone and only the 30 s limit ends it.
	for _, n := range c.nodes {
		n.terminate()
	}
	var errs []error
	for i, n := range c.nodes {
		if err := n.stop(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.nodeName(i), err))
		}
	}
	return errors.Join(errs...)
}

// LogTail returns the last n lines of node i's broker.log.
func (c *Cluster) LogTail(i, n int) string {
	b, err := tail(c.nodes[i].logPath(), 64<<10)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// LogPath is the path of node i's broker.log.
func (c *Cluster) LogPath(i int) string { return c.nodes[i].logPath() }

func (c *Cluster) killAll() {
	for _, n := range c.nodes {
		n.kill()
	}
}

// readVersion finds the last "Kafka version: X" a node logged.
func (c *Cluster) readVersion() string {
	const key = "Kafka version: "
	for _, n := range c.nodes {
		b, err := tail(n.logPath(), 1<<20)
		if err != nil {
			continue
		}
		if at := strings.LastIndex(string(b), key); at >= 0 {
			v, _, _ := strings.Cut(string(b[at+len(key):]), " ")
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// tail reads at most the last limit bytes of the file at path.
func tail(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(0, st.Size()-limit)
	b := make([]byte, st.Size()-off)
	n, err := f.ReadAt(b, off)
	if err != nil && n < len(b) {
		return nil, err
	}
	return b[:n], nil
}
