package localkafka

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
)

// readyLimit bounds how long a node may take to serve; one starts in 2-3 s.
const readyLimit = 90 * time.Second

// stopLimit bounds how long a node may take to shut down after SIGTERM.
const stopLimit = 30 * time.Second

// node is one broker-and-controller process of a cluster.
type node struct {
	dir    string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // its exit status, once exited is closed
}

func (c *Cluster) newNode(i int) *node {
	return &node{dir: filepath.Join(c.Dir, "node"+strconv.Itoa(i+1))}
}

func (c *Cluster) nodeName(i int) string { return fmt.Sprintf("%s node %d", c.Name, i+1) }

func (c *Cluster) log4jPath() string { return filepath.Join(c.Dir, "log4j2.properties") }

func (n *node) logPath() string    { return filepath.Join(n.dir, "broker.log") }
func (n *node) configPath() string { return filepath.Join(n.dir, "server.properties") }
func (n *node) dataDir() string    { return filepath.Join(n.dir, "data") }

// javaArgs is the command line of main with the install's jars and our
// logging; java expands the libs/* classpath itself.
func (c *Cluster) javaArgs(main string, args ...string) []string {
	return append([]string{"-Xmx" + c.Heap, "-XX:+UseSerialGC",
		"-cp", filepath.Join(c.Home, "libs", "*"),
		"-Dlog4j2.configurationFile=" + c.log4jPath(), main}, args...)
}

// prepare checks node i's ports, writes its configuration and formats its
// storage when it has none.
func (c *Cluster) prepare(ctx context.Context, i int) error {
	n := c.nodes[i]
	for _, p := range []int{c.Ports[i], c.ControllerPorts[i]} {
		if err := portFree(p); err != nil {
			return fmt.Errorf("%s: %w", c.nodeName(i), err)
		}
	}
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(n.configPath(), c.serverProperties(i, n.dataDir()), 0o644); err != nil {
		return err
	}
	return c.format(ctx, i)
}

// launch starts node i's process without waiting for it to serve.
func (c *Cluster) launch(i int) error {
	n := c.nodes[i]
	logf, err := os.OpenFile(n.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.java, c.javaArgs("kafka.Kafka", n.configPath())...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: a Ctrl-C in the terminal reaches the stack, which
	// then stops the nodes cleanly, instead of killing them mid-write.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", c.nodeName(i), err)
	}
	n.cmd, n.exited, n.err = cmd, make(chan struct{}), nil
	go func() {
		n.err = cmd.Wait()
		logf.Close()
		close(n.exited)
	}()
	return nil
}

// format writes the node's meta.properties with the cluster id, unless it
// has one: formatting again would fail, and a restart must keep the data.
func (c *Cluster) format(ctx context.Context, i int) error {
	n := c.nodes[i]
	if _, err := os.Stat(filepath.Join(n.dataDir(), "meta.properties")); err == nil {
		return nil
	}
	// C1 only: the tool runs for a second, and C2 would only slow it down.
	args := append([]string{"-XX:TieredStopAtLevel=1"}, c.javaArgs("kafka.tools.StorageTool",
		"format", "--cluster-id="+c.id, "-c", n.configPath())...)
	cmd := exec.CommandContext(ctx, c.java, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("format %s: %w\n%s", c.nodeName(i), err, out)
	}
	return nil
}

// waitServing polls node i until its Metadata lists every node as a broker.
func (c *Cluster) waitServing(ctx context.Context, i int) error {
	n := c.nodes[i]
	deadline := time.Now().Add(readyLimit)
	for {
		err := c.serves(ctx, addr(c.Ports[i]))
		if err == nil {
			return nil
		}
		select {
		case <-n.exited:
			return fmt.Errorf("%s %w (%v); last lines of %s:\n%s", c.nodeName(i), ErrExited, n.err, n.logPath(), c.LogTail(i, 30))
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", c.nodeName(i), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s %w after %s (%w); last lines of %s:\n%s", c.nodeName(i), ErrNotReady, readyLimit, err, n.logPath(), c.LogTail(i, 30))
		}
	}
}

// serves asks the broker at addr for its Metadata over a fresh transport: a
// kafka-go transport remembers a refused dial for seconds.
func (c *Cluster) serves(ctx context.Context, addr string) error {
	tr := &kafka.Transport{DialTimeout: time.Second}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 2 * time.Second, Transport: tr}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		return err
	}
	if len(md.Brokers) < c.Nodes {
		return fmt.Errorf("%d of %d brokers registered", len(md.Brokers), c.Nodes)
	}
	return nil
}

func (n *node) running() bool {
	if n.exited == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// terminate asks a running node to shut down cleanly, without waiting.
func (n *node) terminate() {
	if n.running() {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
	}
}

// stop terminates the node and waits up to stopLimit, then kills it.
func (n *node) stop() error {
	if !n.running() {
		return nil
	}
	n.terminate()
	select {
	case <-n.exited:
		return nil
	case <-time.After(stopLimit):
		n.kill()
		return ErrStopTimeout
	}
}

func (n *node) kill() {
	if n.running() {
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
}
