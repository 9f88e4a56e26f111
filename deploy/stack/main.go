// Command stack runs the whole product locally on its embedded defaults:
// `stack run` starts the MariaDB instances (control on 33060, shard i on
// 33061+i; data under ./.data), applies the migrations and runs every
// component with its logs prefixed; Ctrl-C stops everything cleanly and a
// second run resumes on the same data. It also runs the embedded
// Kafka-protocol broker on 127.0.0.1:9092 and one cdc-producer per shard.
// `stack migrate` only starts the
// databases, migrates them and stops them.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/shopledger/shopledger/internal/localstack"
)

func main() {
	fs := flag.NewFlagSet("stack", flag.ExitOnError)
	root := fs.String("data", "./.data", "data root (databases and the shared folder)")
	shards := fs.Int("shards", 2, "number of shards")
	bin := fs.String("bin", "", "folder with the component binaries (default: this binary's folder)")
	if len(os.Args) < 2 || (os.Args[1] != "run" && os.Args[1] != "migrate") {
		fmt.Fprintln(os.Stderr, "usage: stack run|migrate [--data DIR] [--shards N] [--bin DIR]")
		os.Exit(2)
	}
	fs.Parse(os.Args[2:])
	if *shards < 1 || *shards > 64 {
		fmt.Fprintln(os.Stderr, "stack: --shards must be 1..64")
		os.Exit(2)
	}
	if *bin == "" {
		exe, _ := os.Executable()
		*bin = filepath.Dir(exe)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l := localstack.DefaultLayout(*root, *shards)
	if err := run(ctx, os.Args[1], l, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "stack:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "%-16s| %s\n", "stack", fmt.Sprintf(format, args...))
}

func run(ctx context.Context, cmd string, l localstack.Layout, bin string) error {
	if err := os.MkdirAll(l.Shared(), 0o755); err != nil {
		return err
	}
	dbs, err := localstack.StartDatabases(ctx, l, logf)
	if err != nil {
		return err
	}
	defer func() {
		logf("stopping databases")
		dbs.Stop()
		logf("stopped")
	}()
	logf("migrations applied")
	if cmd == "migrate" {
		return nil
	}
	broker, err := localstack.StartBroker(ctx, 9092, filepath.Join(l.Root, "kafka"), localstack.CDCTopics()...)
	if err != nil {
		return err
	}
	defer func() {
		logf("stopping the Kafka broker")
		broker.Close()
	}()
	logf("Kafka broker (embedded kfake) on %s, data in %s", strings.Join(broker.Addrs(), ","), filepath.Join(l.Root, "kafka"))
	out := &localstack.PrefixWriter{W: os.Stdout}
	procs := localstack.Components(l, bin, out, localstack.Endpoints{PipelinePort: 8082, IngestPort: 8080,
		Brokers: strings.Join(broker.Addrs(), ","), BalancePort: 8083, CachePort: 8084}, nil)
	started := procs[:0:0]
	defer func() {
		logf("stopping %s", localstack.Names(started))
		for i := len(started) - 1; i >= 0; i-- {
			started[i].Stop(15 * time.Second)
		}
	}()
	for _, p := range procs {
		if err := p.Start(); err != nil {
			return err
		}
		started = append(started, p)
		if p.Name == "pipelineapi" {
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := localstack.WaitHTTP(wctx, "http://127.0.0.1:8082/ready")
			cancel()
			if err != nil {
				return err
			}
		}
	}
	logf("running: ingest :8080, pipelineapi :8082, balance :8083, cache :8084, Kafka :9092, %d shards; shared folder %s. Ctrl-C stops.", l.Shards, l.Shared())
	<-ctx.Done()
	return nil
}
