package stacktest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/localdb"
	"github.com/shopledger/shopledger/internal/localstack"
	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/schema"
)

// Binary builds the product's command pkg (a path under the module, such
// as "pipelineapi") into t's temporary folder and returns its path; the go
// build cache makes a rebuild a link.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, "github.com/shopledger/shopledger/"+pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// PipelineAPI runs the real pipeline API (the pipelineapi binary, as its
// own least-privilege user) over a migrated pipeline_db on inst, and
// returns a client for it; it stops at cleanup.
func PipelineAPI(t testing.TB, inst *localdb.Instance) *pipeline.Client {
	t.Helper()
	Database(t, inst, "pipeline_db", schema.Pipeline)
	port, err := localdb.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	logs, err := os.Create(filepath.Join(t.TempDir(), "pipelineapi.log"))
	if err != nil {
		t.Fatal(err)
	}
	p := &localstack.Process{Name: "pipelineapi", Bin: Binary(t, "pipelineapi"), Out: &localstack.PrefixWriter{W: logs},
		Env: []string{"DATABASE_ADDR=" + inst.Addr(), fmt.Sprintf("SERVER_PORT=%d", port), "LOGGING_LEVEL=warn"}}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(10 * time.Second)
		if t.Failed() {
			if b, err := os.ReadFile(logs.Name()); err == nil && len(b) > 0 {
				t.Logf("pipelineapi log:\n%s", b)
			}
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := localstack.WaitHTTP(ctx, base+"/ready"); err != nil {
		t.Fatal(err)
	}
	return pipeline.NewClient(pipeline.ClientConfig{URL: base + "/api/v1/pipeline", Backoff: 20 * time.Millisecond})
}
