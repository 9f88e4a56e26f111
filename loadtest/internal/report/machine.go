package report

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// Machine is where the load test ran (the stack, in the usual case of a
// local stack, shares it).
type Machine struct {
	CPU      string
	Cores    int
	MemoryGB float64
	OS       string
	Kernel   string
	Go       string
	Host     string
}

// ThisMachine describes the machine this process runs on, from /proc and
// /etc/os-release where they are (Linux); what cannot be read is "unknown".
func ThisMachine() Machine {
	m := Machine{CPU: "unknown", Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Kernel: "unknown", Go: runtime.Version()}
	m.Host, _ = os.Hostname()
	if v := field("/proc/cpuinfo", "model name", ":"); v != "" {
		m.CPU = v
	}
	if v := field("/proc/meminfo", "MemTotal", ":"); v != "" {
		kb, _ := strconv.ParseFloat(strings.TrimSuffix(v, " kB"), 64)
		m.MemoryGB = kb / (1 << 20)
	}
	if v := field("/etc/os-release", "PRETTY_NAME", "="); v != "" {
		m.OS = strings.Trim(v, `"`) + " (" + runtime.GOARCH + ")"
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		m.Kernel = utsString(u.Sysname[:]) + " " + utsString(u.Release[:])
	}
	return m
}

// field returns the first value of key in a "key<sep>value" file.
func field(path, key, sep string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), sep)
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func utsString(b []int8) string {
	var s strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		s.WriteByte(byte(c))
	}
	return s.String()
}

func (m Machine) String() string {
	return fmt.Sprintf("%s, %d cores, %.1f GiB, %s, %s, %s", m.CPU, m.Cores, m.MemoryGB, m.OS, m.Kernel, m.Go)
}
