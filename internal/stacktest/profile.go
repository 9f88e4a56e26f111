package stacktest

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Profiling is what SHOPLEDGER_BENCH_PROFILE asks of a benchmark: the Go
// profiles of the components it runs, written into Dir (empty: none), CPU
// profiles over Seconds (SHOPLEDGER_BENCH_PROFILE_SECONDS).
type Profiling struct {
	Dir     string
	Seconds int
}

// BenchProfiling reads the settings, with seconds as the default length of
// a CPU profile, and creates the folder.
func BenchProfiling(tb testing.TB, seconds int) Profiling {
	tb.Helper()
	p := Profiling{Dir: os.Getenv("SHOPLEDGER_BENCH_PROFILE"), Seconds: seconds}
	if v, err := strconv.Atoi(os.Getenv("SHOPLEDGER_BENCH_PROFILE_SECONDS")); err == nil && v > 0 {
		p.Seconds = v
	}
	if p.Dir != "" {
		if err := os.MkdirAll(p.Dir, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	return p
}

// Env is the environment that makes a component serve its profiles long
// enough for a CPU profile; nil when nothing is profiled.
func (p Profiling) Env() []string {
	if p.Dir == "" {
		return nil
	}
	return []string{"SERVER_PPROF=true", fmt.Sprintf("SERVER_WRITE_TIMEOUT=%ds", p.Seconds+60)}
}

// CPU is the /debug/pprof path of a CPU profile of Seconds.
func (p Profiling) CPU() string { return fmt.Sprintf("profile?seconds=%d", p.Seconds) }

// Fetch writes /debug/pprof/<what> of the process serving on port to
// Dir/name; a failure fails the benchmark, not at once.
func (p Profiling) Fetch(tb testing.TB, port int, what, name string) {
	path := filepath.Join(p.Dir, name)
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/%s", port, what))
	if err != nil {
		tb.Errorf("profile %s: %v", path, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		tb.Errorf("profile %s: HTTP %d: %s", path, resp.StatusCode, msg)
		return
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Error(err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		tb.Errorf("profile %s: %v", path, err)
	}
}
