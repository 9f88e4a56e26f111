// Package debezium holds the Debezium runner (a Maven project: Debezium's
// own connector run by debezium-embedded and published through Kafka's
// JsonConverter) and the compat test that holds the cdc-producer to it
// (`make compat`).
package debezium

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// runnerJar is the runner, built by Maven into target/ (git-ignored).
const runnerJar = "target/debezium-runner.jar"

var build struct {
	once sync.Once
	err  error
}

// buildRunner builds the runner with Maven unless the jar is newer than
// the pom and every source; Maven fetches the pinned jars from Maven
// Central (checksums verified) the first time.
func buildRunner(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		jar, err := os.Stat(runnerJar)
		if err == nil && !newerSources(jar.ModTime()) {
			return
		}
		if _, err := exec.LookPath("mvn"); err != nil {
			build.err = fmt.Errorf("mvn not found (make tools installs Maven and Java): %w", err)
			return
		}
		start := time.Now()
		cmd := exec.Command("mvn", "-B", "-q", "--strict-checksums", "package")
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("mvn package: %w\n%s", err, out)
			return
		}
		t.Logf("built the Debezium runner in %s", time.Since(start).Round(100*time.Millisecond))
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	abs, err := filepath.Abs(runnerJar)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// newerSources reports whether the pom or a source changed after t.
func newerSources(t time.Time) bool {
	newer := false
	for _, root := range []string{"pom.xml", "src"} {
		filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if info, err := d.Info(); err == nil && info.ModTime().After(t) {
					newer = true
				}
			}
			return nil
		})
	}
	return newer
}

// runner is a running `debezium-runner capture`.
type runner struct {
	cmd  *exec.Cmd
	done chan error
	log  *bytes.Buffer
	mu   *sync.Mutex
}

// startCapture runs `java -jar debezium-runner.jar capture args...`; it is
// stopped (SIGTERM, then killed) at cleanup, its log printed if t failed.
func startCapture(t testing.TB, jar string, args ...string) *runner {
	t.Helper()
	cmd := exec.Command("java", append([]string{"-jar", jar, "capture"}, args...)...)
	r := &runner{cmd: cmd, done: make(chan error, 1), log: &bytes.Buffer{}, mu: &sync.Mutex{}}
	cmd.Stdout, cmd.Stderr = lockedWriter{r.mu, r.log}, lockedWriter{r.mu, r.log}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- cmd.Wait() }()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			r.mu.Lock()
			t.Logf("debezium-runner log:\n%s", tail(r.log.String(), 8000))
			r.mu.Unlock()
		}
	})
	return r
}

// stop ends the runner: SIGTERM (the engine closes), then a kill.
func (r *runner) stop() {
	if r.cmd.ProcessState != nil {
		return
	}
	r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// sinkRecord is a line of `debezium-runner sink`: a record after
// JsonConverter and the transforms.
type sinkRecord struct {
	Topic     string          `json:"topic"`
	Partition int             `json:"partition"`
	Offset    int64           `json:"offset"`
	Key       json.RawMessage `json:"key"`
	Value     json.RawMessage `json:"value"`
	Dropped   bool            `json:"dropped"`
	Error     string          `json:"error"`
}

// sink runs `debezium-runner sink` over topics and returns its records.
func sink(t testing.TB, jar string, brokers string, topics []string, args ...string) []sinkRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "java", append([]string{"-jar", jar, "sink", "--kafka", brokers, "--topics", strings.Join(topics, ",")}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("debezium-runner sink %v: %v\n%s", topics, err, tail(stderr.String(), 4000))
	}
	var recs []sinkRecord
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r sinkRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("sink line %s: %v", sc.Bytes(), err)
		}
		recs = append(recs, r)
	}
	return recs
}
