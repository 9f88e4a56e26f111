package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/schemathesis"
)

// TestSchemathesis runs the pinned Schemathesis (`make tools` installs it)
// with every check (deploy/schemathesis/<service>.toml says the
// exceptions) against each HTTP API of the running product, from the
// OpenAPI description the service serves at /openapi.json: no 5xx, every
// answer in the described status codes, content types, headers and
// schemas, invalid input refused with a 4xx, valid input accepted, 405
// with Allow for methods not described.
func TestSchemathesis(t *testing.T) {
	bin, err := schemathesis.Bin()
	if err != nil {
		t.Fatal(err)
	}
	s := startStack(t, 2, []string{"ingest", "cdc"}, "EVENTS_EVENTS_PER_BATCH=50", "EVENTS_GENERATION_INTERVAL=1s")
	for _, name := range []string{"pipelineapi", "balance", "cache", "ingest"} {
		s.waitReady(name)
	}
	time.Sleep(3 * time.Second) // some files through, so that reads find data
	for _, name := range []string{"pipelineapi", "balance", "cache", "ingest"} {
		t.Run(name, func(t *testing.T) {
			base := "http://127.0.0.1:" + s.env(name, "SERVER_PORT")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			start := time.Now()
			var args []string
			if cfg, _ := filepath.Abs("../deploy/schemathesis/" + name + ".toml"); fileExists(cfg) {
				args = append(args, "--config-file", cfg)
			}
			args = append(args, "run", base+"/openapi.json", "--url", base, "--phases", "examples,coverage,fuzzing",
				"--max-examples", "40", "--workers", "2", "--no-color")
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Dir = t.TempDir() // its .schemathesis cache goes there, not into the tree
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("schemathesis against %s: %v\n%s", name, err, out)
				return
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			t.Logf("%s: %s (%s)", name, lines[len(lines)-1], time.Since(start).Round(time.Second))
			if _, warnings, ok := strings.Cut(string(out), "WARNINGS"); ok {
				warnings, _, _ = strings.Cut(warnings, "SUMMARY")
				t.Logf("%s: warnings:%s", name, warnings)
			}
		})
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
