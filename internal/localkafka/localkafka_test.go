package localkafka_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/localkafka"
)

func TestDefaultDir(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ env, want string }{
		{"", filepath.Join(wd, "..", "..", ".tools", "kafka-"+localkafka.Version)},
		{"/opt/tools", "/opt/tools/kafka-" + localkafka.Version},
	} {
		t.Setenv("SHOPLEDGER_TOOLS_DIR", tc.env)
		if got, err := localkafka.DefaultDir(); err != nil || got != filepath.Clean(tc.want) {
			t.Errorf("DefaultDir() with SHOPLEDGER_TOOLS_DIR=%q = %q, %v, want %q", tc.env, got, err, filepath.Clean(tc.want))
		}
	}
}

// TestInstall installs into a fresh folder from three installers at once:
// one runs Maven, the others wait and reuse its install, as does a later
// call; a half-finished install (no marker) is redone.
func TestInstall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "kafka")
	results := make([]bool, 3)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			var err error
			if results[i], err = localkafka.Install(ctx, dir, t.Logf); err != nil {
				t.Errorf("Install(%s) = %v", dir, err)
			}
		})
	}
	wg.Wait()
	if n := count(results); n != 1 {
		t.Fatalf("concurrent Install(%s) installed %d times, want 1", dir, n)
	}
	if _, err := os.Stat(filepath.Join(dir, "libs", "kafka_2.13-"+localkafka.Version+".jar")); err != nil {
		t.Fatalf("no kafka jar after Install: %v", err)
	}
	if again, err := localkafka.Install(ctx, dir, t.Logf); again || err != nil {
		t.Errorf("second Install(%s) = %v, %v, want false, nil", dir, again, err)
	}
	if err := os.Remove(filepath.Join(dir, ".installed")); err != nil {
		t.Fatal(err)
	}
	if redo, err := localkafka.Install(ctx, dir, t.Logf); !redo || err != nil {
		t.Errorf("Install(%s) of a half-finished install = %v, %v, want true, nil", dir, redo, err)
	}
}

func count(bs []bool) (n int) {
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// TestStartFails checks that a cluster that cannot come up says why at once
// and leaves nothing running.
func TestStartFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	home := install(ctx, t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		name string
		opts localkafka.Options
		want error
	}{
		{"port taken", localkafka.Options{Ports: []int{taken.Addr().(*net.TCPAddr).Port}}, localkafka.ErrPortTaken},
		{"bad config", localkafka.Options{Properties: map[string]string{"authorizer.class.name": "no.such.Authorizer"}}, localkafka.ErrExited},
		{"not installed", localkafka.Options{Home: t.TempDir()}, localkafka.ErrNotInstalled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.Dir = t.TempDir()
			if o.Home == "" {
				o.Home = home
			}
			if c, err := localkafka.Start(ctx, o); !errors.Is(err, tc.want) {
				if c != nil {
					c.Stop()
				}
				t.Fatalf("Start(%+v) = %v, want %v", o, err, tc.want)
			}
		})
	}
}

func install(ctx context.Context, t *testing.T) string {
	t.Helper()
	home, err := localkafka.DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := localkafka.Install(ctx, home, t.Logf); err != nil {
		t.Fatal(err)
	}
	return home
}
