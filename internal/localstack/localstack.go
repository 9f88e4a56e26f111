// Package localstack runs the whole product on one machine: the control
// MariaDB instance and N shard instances on the ports of SPEC §6, their
// migrations, and the component processes with their logs prefixed by
// component. `make run` uses it, and so do the end-to-end tests, which also
// kill and restart its processes.
package localstack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/shopledger/shopledger/internal/localdb"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/schema"
)

// Layout says where everything lives.
type Layout struct {
	Root        string // data root, e.g. ./.data
	Shards      int
	ControlPort int   // 33060 by default
	ShardPorts  []int // shard i listens on ShardPorts[i]; 33061+i by default
	// SmallServers gives each MariaDB a small buffer pool (tests).
	SmallServers bool
}

// DefaultLayout is the layout of SPEC §6 under root.
func DefaultLayout(root string, shards int) Layout {
	l := Layout{Root: root, Shards: shards, ControlPort: 33060}
	for i := range shards {
		l.ShardPorts = append(l.ShardPorts, 33061+i)
	}
	return l
}

// Shared is the shared folder of the stages.
func (l Layout) Shared() string { return filepath.Join(l.Root, "shared") }

// ShardAddr is shard i's address.
func (l Layout) ShardAddr(i int) string { return fmt.Sprintf("127.0.0.1:%d", l.ShardPorts[i]) }

// ControlAddr is the control instance's address.
func (l Layout) ControlAddr() string { return fmt.Sprintf("127.0.0.1:%d", l.ControlPort) }

// Databases are the running MariaDB instances.
type Databases struct {
	Control *localdb.Instance
	Shards  []*localdb.Instance

	mu       sync.Mutex
	stopping bool
	watchers sync.WaitGroup
	logf     func(string, ...any)
}

// StartDatabases starts (initialising on first use) the control and shard
// instances in parallel and applies every migration.
func StartDatabases(ctx context.Context, l Layout, logf func(string, ...any)) (*Databases, error) {
	if err := localdb.EnsureServer(ctx, logf); err != nil {
		return nil, err
	}
	d := &Databases{Shards: make([]*localdb.Instance, l.Shards)}
	var extra []string
	if l.SmallServers {
		extra = []string{"--innodb-buffer-pool-size=64M", "--innodb-log-file-size=64M"}
	}
	g, gctx := errgroup.WithContext(ctx)
	var mu sync.Mutex
	start := func(name string, port int, id uint32, set func(*localdb.Instance)) {
		g.Go(func() error {
			inst, err := localdb.Start(gctx, localdb.Options{Name: name, Dir: filepath.Join(l.Root, "mysql", name),
				Port: port, ServerID: id, Extra: extra})
			if err != nil {
				return err
			}
			mu.Lock()
			set(inst)
			mu.Unlock()
			logf("%s: MariaDB on %s (data %s)", name, inst.Addr(), inst.Dir)
			return nil
		})
	}
	start("control", l.ControlPort, 1, func(i *localdb.Instance) { d.Control = i })
	for i := range l.Shards {
		start(fmt.Sprintf("shard%d", i), l.ShardPorts[i], uint32(11+i), func(inst *localdb.Instance) { d.Shards[i] = inst })
	}
	if err := g.Wait(); err != nil {
		d.Stop()
		return nil, err
	}
	if err := d.Migrate(ctx); err != nil {
		d.Stop()
		return nil, err
	}
	d.logf = logf
	d.watch(&d.Control)
	for i := range d.Shards {
		d.watch(&d.Shards[i])
	}
	return d, nil
}

// watch restarts the instance in *slot, on the same data and port, whenever
// it exits while the stack runs, as a service manager restarts a crashed
// server: the components ride through the outage.
func (d *Databases) watch(slot **localdb.Instance) {
	d.watchers.Add(1)
	go func() {
		defer d.watchers.Done()
		for {
			d.mu.Lock()
			inst := *slot
			d.mu.Unlock()
			<-inst.Done()
			for attempt := 0; ; attempt++ {
				d.mu.Lock()
				stopping := d.stopping
				d.mu.Unlock()
				if stopping {
					return
				}
				time.Sleep(time.Second)
				d.logf("%s: MariaDB exited (%v); restarting", inst.Name, inst.Err())
				next, err := localdb.Start(context.Background(), inst.Options)
				if err == nil {
					d.mu.Lock()
					*slot = next
					d.mu.Unlock()
					d.logf("%s: MariaDB restarted on %s", inst.Name, next.Addr())
					break
				}
				d.logf("%s: restart failed (attempt %d): %v", inst.Name, attempt+1, err)
			}
		}
	}()
}

// Kill ends the instance named name (control, shard0, ...) at once, as a
// crash would; it is restarted like any component.
func (d *Databases) Kill(name string) {
	d.mu.Lock()
	var target *localdb.Instance
	for _, inst := range append([]*localdb.Instance{d.Control}, d.Shards...) {
		if inst != nil && inst.Name == name {
			target = inst
		}
	}
	d.mu.Unlock()
	if target != nil {
		target.Kill()
	}
}

// Migrate applies every database's migrations and creates every
// component's least-privilege user (without password: the instances listen
// on 127.0.0.1 only), so that the components never connect as root.
func (d *Databases) Migrate(ctx context.Context) error {
	if err := MigrateControl(ctx, sqldb.Config{Addr: d.Control.Addr(), User: "root"}); err != nil {
		return err
	}
	if err := createUsers(ctx, d.Control, schema.ControlServer); err != nil {
		return err
	}
	for _, s := range d.Shards {
		if err := MigrateShard(ctx, sqldb.Config{Addr: s.Addr(), User: "root"}); err != nil {
			return err
		}
		if err := createUsers(ctx, s, schema.ShardServer); err != nil {
			return err
		}
	}
	return nil
}

// ControlDatabases are the databases of the control server and their
// migrations.
var ControlDatabases = []struct {
	Name string
	Set  schema.Set
}{{"pipeline_db", schema.Pipeline}, {"splitter_db", schema.Splitter}, {"balance_db", schema.Balance}, {"cache_db", schema.Cache}}

// MigrateControl creates and migrates every database of the control
// server at c (c.Database is ignored).
func MigrateControl(ctx context.Context, c sqldb.Config) error {
	for _, m := range ControlDatabases {
		c.Database = m.Name
		if err := schema.Apply(ctx, c, m.Set); err != nil {
			return err
		}
	}
	return nil
}

// MigrateShard creates and migrates the shop database of the shard server
// at c (c.Database is ignored).
func MigrateShard(ctx context.Context, c sqldb.Config) error {
	c.Database = "shop"
	return schema.Apply(ctx, c, schema.Shard)
}

func createUsers(ctx context.Context, inst *localdb.Instance, s schema.Server) error {
	db, err := inst.DB("")
	if err != nil {
		return err
	}
	defer db.Close()
	if err := schema.CreateUsers(ctx, db, s, func(string) string { return "" }); err != nil {
		return fmt.Errorf("%s: %w", inst.Name, err)
	}
	return nil
}

// Stop shuts every instance down cleanly, for good.
func (d *Databases) Stop() {
	d.mu.Lock()
	d.stopping = true
	insts := append([]*localdb.Instance{d.Control}, d.Shards...)
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, inst := range insts {
		if inst != nil {
			wg.Go(func() { _ = inst.Stop() })
		}
	}
	wg.Wait()
	d.watchers.Wait()
}

// Process is a component process, restarted when it dies unless stopped.
type Process struct {
	Name string
	Bin  string
	Args []string
	Env  []string
	Out  io.Writer // receives "name | line" for each line of output
	// Restart restarts the process after it exits on its own.
	Restart bool

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool
	done    chan struct{}
}

// Start runs the process (and its supervisor when Restart is set).
func (p *Process) Start() error {
	p.mu.Lock()
	p.stopped = false
	p.mu.Unlock()
	p.done = make(chan struct{})
	if err := p.spawn(); err != nil {
		return err
	}
	go p.supervise()
	return nil
}

func (p *Process) spawn() error {
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(p.Out, "%-16s| %s\n", p.Name, sc.Text())
		}
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		p.mu.Lock()
		stopped := p.stopped
		p.mu.Unlock()
		if !stopped {
			fmt.Fprintf(p.Out, "%-16s| exited: %v\n", p.Name, err)
		}
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	return nil
}

func (p *Process) supervise() {
	defer close(p.done)
	for {
		p.mu.Lock()
		exited := p.exited
		p.mu.Unlock()
		<-exited
		p.mu.Lock()
		stop := p.stopped || !p.Restart
		p.mu.Unlock()
		if stop {
			return
		}
		time.Sleep(time.Second)
		p.mu.Lock()
		stop = p.stopped
		p.mu.Unlock()
		if stop {
			return
		}
		fmt.Fprintf(p.Out, "%-16s| restarting\n", p.Name)
		if err := p.spawn(); err != nil {
			fmt.Fprintf(p.Out, "%-16s| %v\n", p.Name, err)
			return
		}
	}
}

// Kill sends SIGKILL, as a crash would; a supervised process restarts.
func (p *Process) Kill() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	_ = cmd.Process.Kill()
	<-exited
}

// Stop ends the process with SIGTERM (SIGKILL after timeout) for good.
func (p *Process) Stop(timeout time.Duration) {
	p.mu.Lock()
	p.stopped = true
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-exited
	}
	<-p.done
}

// Pid is the process id of the current run.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// WaitHTTP polls url until it answers 200 or ctx ends.
func WaitHTTP(ctx context.Context, url string) error {
	var last error = errors.New("no answer yet")
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("HTTP %d", resp.StatusCode)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", url, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Endpoints are the addresses the components serve on or connect to.
type Endpoints struct {
	PipelinePort int
	IngestPort   int
	// Brokers is the Kafka bootstrap list (host:port,...); empty runs no
	// cdc-producer, balance or cache.
	Brokers string
	// BalancePort and CachePort are the consumers' REST ports.
	BalancePort, CachePort int
	// SplitterPort, WorkerPorts[i] and ProducerPorts[i] serve /health,
	// /ready and /metrics; zero (or a short list) leaves the SPEC §6 default
	// (8085, 8090+i, 8100+i).
	SplitterPort               int
	WorkerPorts, ProducerPorts []int
}

// portEnv sets SERVER_PORT when port is not zero.
func portEnv(port int) []string {
	if port == 0 {
		return nil
	}
	return []string{fmt.Sprintf("SERVER_PORT=%d", port)}
}

func at(ports []int, i int) int {
	if i < len(ports) {
		return ports[i]
	}
	return 0
}

// Components returns the product's processes for layout l, with binaries
// from binDir: pipelineapi, shard-splitter, one shard-worker per shard, one
// cdc-producer per shard, balance and cache (when there is a broker) and
// ingest, configured
// through the environment plus extraEnv[name].
func Components(l Layout, binDir string, out io.Writer, ep Endpoints, extraEnv map[string][]string) []*Process {
	shared := l.Shared()
	pipelineURL := fmt.Sprintf("http://127.0.0.1:%d/api/v1/pipeline", ep.PipelinePort)
	common := []string{"SHARED_DIR=" + shared, "PIPELINE_URL=" + pipelineURL, fmt.Sprintf("PIPELINE_SHARDS_COUNT=%d", l.Shards)}
	mk := func(name, bin string, args []string, env ...string) *Process {
		env = append(append(append([]string{}, common...), env...), extraEnv[name]...)
		return &Process{Name: name, Bin: filepath.Join(binDir, bin), Args: args, Env: env, Out: out, Restart: true}
	}
	procs := []*Process{
		mk("pipelineapi", "pipelineapi", nil, fmt.Sprintf("SERVER_PORT=%d", ep.PipelinePort), "DATABASE_ADDR="+l.ControlAddr()),
		mk("shard-splitter", "shard-splitter", nil, append(portEnv(ep.SplitterPort), "DATABASE_ADDR="+l.ControlAddr())...),
	}
	for i := range l.Shards {
		procs = append(procs, mk(fmt.Sprintf("shard-worker-%d", i), "shard-worker", []string{"--shard", fmt.Sprint(i)},
			append(portEnv(at(ep.WorkerPorts, i)), "DATABASE_ADDR="+l.ShardAddr(i))...))
	}
	if ep.Brokers != "" {
		for i := range l.Shards {
			procs = append(procs, mk(fmt.Sprintf("cdc-producer-%d", i), "cdc-producer", []string{"--shard", fmt.Sprint(i)},
				append(portEnv(at(ep.ProducerPorts, i)), "DATABASE_ADDR="+l.ShardAddr(i), "KAFKA_BROKERS="+ep.Brokers)...))
		}
		shards := make([]string, l.Shards)
		for i := range shards {
			shards[i] = l.ShardAddr(i)
		}
		for _, c := range []struct {
			name string
			port int
		}{{"balance", ep.BalancePort}, {"cache", ep.CachePort}} {
			procs = append(procs, mk(c.name, c.name, nil, fmt.Sprintf("SERVER_PORT=%d", c.port), "DATABASE_ADDR="+l.ControlAddr(),
				"KAFKA_BROKERS="+ep.Brokers, fmt.Sprintf("SHARDS_COUNT=%d", l.Shards), "SHARDS_ADDRS="+strings.Join(shards, ",")))
		}
	}
	procs = append(procs, mk("ingest", "ingest", nil, fmt.Sprintf("SERVER_PORT=%d", ep.IngestPort)))
	return procs
}

// PrefixWriter serialises lines written by several processes.
type PrefixWriter struct {
	mu sync.Mutex
	W  io.Writer
}

func (w *PrefixWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.W.Write(b)
}

// Names lists process names, for messages.
func Names(procs []*Process) string {
	var n []string
	for _, p := range procs {
		n = append(n, p.Name)
	}
	return strings.Join(n, ", ")
}
