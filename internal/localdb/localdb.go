// Package localdb starts and stops throwaway MariaDB (or MySQL) server
// instances with row-based binlog, for the local stack (`make run`) and for
// integration tests. Each instance keeps its data in its own directory, so a
// second start resumes on the same data.
package localdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/shopledger/shopledger/internal/debpkg"
	"github.com/shopledger/shopledger/internal/freeport"
	"github.com/shopledger/shopledger/internal/sqldb"
)

// ErrNoServer is returned by Start when no MariaDB or MySQL server binary is
// installed. Its message says what to install.
var ErrNoServer = errors.New("no MariaDB server found: install it with `apt-get install -y mariadb-server` (or put mariadbd on PATH)")

// Options describe one instance.
type Options struct {
	Name     string // used in logs and file names, e.g. "shard0"
	Dir      string // holds data/, the socket, the pid and the error log
	Port     int    // TCP port on 127.0.0.1
	ServerID uint32 // binlog server id; must differ between instances
	// Extra server flags appended to the defaults.
	Extra []string
}

// Instance is a running server.
type Instance struct {
	Options
	cmd    *exec.Cmd
	exited chan struct{} // closed when the server process has exited
	err    error         // its exit status, once exited is closed
}

// serverBinary finds mariadbd or mysqld.
func serverBinary() (string, error) {
	for _, name := range []string{"mariadbd", "mysqld"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/libexec"} {
			p := filepath.Join(dir, name)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", ErrNoServer
}

// ServerPackage provides the server EnsureServer installs.
var ServerPackage = debpkg.Need{Bin: "mariadbd", Pkg: "mariadb-server"}

// EnsureServer installs mariadb-server with apt when no server binary is
// found and the process may do so (root, apt-get present); otherwise it
// returns ErrNoServer.
func EnsureServer(ctx context.Context, log func(string, ...any)) error {
	if _, err := serverBinary(); err == nil {
		return nil
	}
	if err := debpkg.Ensure(ctx, log, ServerPackage); err != nil {
		return fmt.Errorf("%w (%w)", ErrNoServer, err)
	}
	_, err := serverBinary()
	return err
}

func (o Options) dataDir() string { return filepath.Join(o.Dir, "data") }

// Socket is the instance's unix socket path.
func (o Options) Socket() string { return filepath.Join(o.Dir, "mysqld.sock") }

// ErrorLog is the path of the server's own log.
func (o Options) ErrorLog() string { return filepath.Join(o.Dir, "server.log") }

// Addr is host:port of the instance.
func (o Options) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(o.Port)) }

// Start initialises the data directory if it is new, starts the server and
// waits until it accepts connections.
func Start(ctx context.Context, o Options) (*Instance, error) {
	bin, err := serverBinary()
	if err != nil {
		return nil, err
	}
	// mariadb-install-db resolves a relative datadir against its basedir.
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(o.dataDir(), "mysql")); errors.Is(err, os.ErrNotExist) {
		if err := initDataDir(ctx, o); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(o.tmpDir(), 0o755); err != nil {
		return nil, err
	}
	if err := portFree(o.Port); err != nil {
		return nil, fmt.Errorf("%s: %w", o.Name, err)
	}
	logf, err := os.OpenFile(o.ErrorLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	args := []string{
		"--no-defaults", "--user=root",
		"--datadir=" + o.dataDir(),
		"--tmpdir=" + o.tmpDir(),
		"--port=" + strconv.Itoa(o.Port),
		"--bind-address=127.0.0.1",
		"--socket=" + o.Socket(),
		"--pid-file=" + filepath.Join(o.Dir, "mysqld.pid"),
		"--server-id=" + strconv.FormatUint(uint64(o.ServerID), 10),
		"--log-bin=" + filepath.Join(o.dataDir(), "binlog"),
		"--binlog-format=ROW", "--binlog-row-image=FULL", "--binlog-row-metadata=FULL",
		"--binlog-annotate-row-events=OFF", "--character-set-server=utf8mb4",
		"--gtid-strict-mode=ON", "--skip-name-resolve",
		"--innodb-buffer-pool-size=256M", "--innodb-log-file-size=256M",
		"--max-connections=300", "--max-allowed-packet=64M",
		// The shard worker writes new rows with LOAD DATA LOCAL INFILE, and
		// a batch's transaction (about 5 MB of binlog for 5,000 events)
		// fits the binlog cache instead of spilling to a temporary file.
		"--local-infile=ON", "--binlog-cache-size=16M",
	}
	args = append(args, o.Extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: a Ctrl-C in the terminal reaches the stack, which
	// then shuts the servers down in order, instead of killing them mid-write.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", o.Name, err)
	}
	inst := &Instance{Options: o, cmd: cmd, exited: make(chan struct{})}
	go func() {
		inst.err = cmd.Wait()
		logf.Close()
		close(inst.exited)
	}()
	if err := inst.waitReady(ctx, 60*time.Second); err != nil {
		inst.Kill()
		return nil, err
	}
	return inst, nil
}

// tmpDir is the instance's own temporary folder: instances bootstrapped in
// parallel with a shared /tmp collide on temporary table names.
func (o Options) tmpDir() string { return filepath.Join(o.Dir, "tmp") }

func initDataDir(ctx context.Context, o Options) error {
	if err := os.MkdirAll(o.tmpDir(), 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "mariadb-install-db", "--no-defaults", "--user=root",
		"--datadir="+o.dataDir(), "--tmpdir="+o.tmpDir(), "--auth-root-authentication-method=normal")
	if _, err := exec.LookPath("mariadb-install-db"); err != nil {
		cmd = exec.CommandContext(ctx, "mysql_install_db", "--no-defaults", "--user=root", "--datadir="+o.dataDir())
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		os.RemoveAll(o.dataDir())
		return fmt.Errorf("initialise %s in %s: %w\n%s", o.Name, o.dataDir(), err, out)
	}
	return nil
}

func portFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("port %d is taken (is another stack running?): %w", port, err)
	}
	return l.Close()
}

func (i *Instance) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	db, err := sqldb.Open(sqldb.Config{Addr: i.Addr(), User: "root"})
	if err != nil {
		return err
	}
	defer db.Close()
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := db.PingContext(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-i.exited:
			return fmt.Errorf("%s exited during start-up (%v); see %s", i.Name, i.err, i.ErrorLog())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %w; see %s", i.Name, limit, err, i.ErrorLog())
		}
	}
}

// DB opens a connection pool to database name on the instance ("" for none).
func (i *Instance) DB(name string) (*sql.DB, error) {
	return sqldb.Open(sqldb.Config{Addr: i.Addr(), User: "root", Database: name})
}

// Stop shuts the server down cleanly and waits for it to exit. Stopping a
// stopped instance does nothing.
func (i *Instance) Stop() error {
	select {
	case <-i.exited:
		return nil
	default:
	}
	_ = i.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-i.exited:
		return nil
	case <-time.After(60 * time.Second):
		i.Kill()
		return fmt.Errorf("%s did not stop within 60s; killed", i.Name)
	}
}

// PID is the server's process id.
func (i *Instance) PID() int { return i.cmd.Process.Pid }

// Done is closed when the server process has exited.
func (i *Instance) Done() <-chan struct{} { return i.exited }

// Err is the server's exit status once Done is closed.
func (i *Instance) Err() error { return i.err }

// Kill ends the server at once, as a crash would.
func (i *Instance) Kill() {
	_ = i.cmd.Process.Kill()
	<-i.exited
}

// FreePort returns an unused TCP port on 127.0.0.1 that a server killed
// on it can bind again (freeport.Pick).
func FreePort() (int, error) {
	ports, err := freeport.Pick(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}
