package stacktest

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/shopledger/shopledger/internal/localdb"
)

// Usage is what a MariaDB server and this process had spent at one
// moment: the benchmarks take two and report the difference per event,
// so that a figure says where the time went (server or client CPU,
// statements, binlog bytes) and not only how long it took.
type Usage struct {
	ServerCPU time.Duration    // the server process's user + system time
	ClientCPU time.Duration    // this process's user + system time
	Status    map[string]int64 // SHOW GLOBAL STATUS, the numeric ones
}

// Measure reads inst's CPU time (from /proc, so Linux only) and global
// status through db, and this process's CPU time.
func Measure(ctx context.Context, inst *localdb.Instance, db *sql.DB) (Usage, error) {
	u := Usage{Status: map[string]int64{}}
	var err error
	if u.ServerCPU, err = ProcessCPU(inst.PID()); err != nil {
		return u, err
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return u, fmt.Errorf("getrusage: %w", err)
	}
	u.ClientCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL STATUS")
	if err != nil {
		return u, fmt.Errorf("global status: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return u, fmt.Errorf("global status: %w", err)
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			u.Status[k] = n
		}
	}
	return u, rows.Err()
}

// Sub returns u - v.
func (u Usage) Sub(v Usage) Usage {
	d := Usage{ServerCPU: u.ServerCPU - v.ServerCPU, ClientCPU: u.ClientCPU - v.ClientCPU, Status: map[string]int64{}}
	for k, n := range u.Status {
		d.Status[k] = n - v.Status[k]
	}
	return d
}

// Add returns u + v.
func (u Usage) Add(v Usage) Usage {
	d := Usage{ServerCPU: u.ServerCPU + v.ServerCPU, ClientCPU: u.ClientCPU + v.ClientCPU, Status: map[string]int64{}}
	for k, n := range u.Status {
		d.Status[k] = n
	}
	for k, n := range v.Status {
		d.Status[k] += n
	}
	return d
}

// RowOps is the rows written, updated and deleted, in tables of every
// engine but the server's own temporary ones (Handler_write, _update,
// _delete).
func (u Usage) RowOps() int64 {
	return u.Status["Handler_write"] + u.Status["Handler_update"] + u.Status["Handler_delete"]
}

// ProcessCPU is the user + system time process pid has spent, from /proc
// (Linux only).
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("CPU time of process %d: %w", pid, err)
	}
	// Fields after the command name, which may hold spaces: state is
	// the first, utime and stime the 12th and 13th.
	f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("CPU time: short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("CPU time: bad /proc/%d/stat", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// clockTicks is USER_HZ, the unit of /proc times: 100 on every Linux
// architecture Go supports.
const clockTicks = 100
