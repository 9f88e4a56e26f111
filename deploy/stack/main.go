// Command stack runs the whole product locally on its embedded defaults:
// `stack run` starts the MariaDB instances (control on 33060, shard i on
// 33061+i; data under ./.data), applies the migrations, starts the Kafka
// broker on 127.0.0.1:9092 and runs every component with its logs prefixed;
// Ctrl-C stops everything cleanly and a second run resumes on the same data.
// `stack migrate` only starts the databases, migrates them and stops them;
// with [migrate] addresses configured, it migrates those servers instead
// (the compose stack's one-shot migrate service).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shopledger/shopledger/internal/cli"
	"github.com/shopledger/shopledger/internal/debpkg"
	"github.com/shopledger/shopledger/internal/localdb"
	"github.com/shopledger/shopledger/internal/localkafka"
	"github.com/shopledger/shopledger/internal/localstack"
	"github.com/shopledger/shopledger/internal/schemathesis"
	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/topics"
)

// Config is what `stack migrate` reads when it migrates servers of a
// deployment rather than the local ones.
type Config struct {
	Migrate struct {
		// ControlAddr and ShardAddrs are the servers to migrate; when both
		// are empty, migrate starts and migrates the local instances.
		ControlAddr string   `mapstructure:"control_addr"`
		ShardAddrs  []string `mapstructure:"shard_addrs"`
		// User and Password log in with the right to create and alter the
		// databases (the migrator role of schema.Roles).
		User     string `mapstructure:"user"`
		Password string `mapstructure:"password"`
		// Wait is how long to wait for the servers to answer.
		Wait time.Duration `mapstructure:"wait"`
	} `mapstructure:"migrate"`
}

func defaults() *Config {
	c := &Config{}
	c.Migrate.User, c.Migrate.Wait = "migrator", time.Minute
	return c
}

// options are the flags both commands share.
type options struct {
	root   *string
	shards *int
	bin    *string
	broker *string
}

func flags(fs *flag.FlagSet) options {
	return options{
		root:   fs.String("data", "./.data", "data root `DIR` (databases, broker, shared folder)"),
		shards: fs.Int("shards", 2, "number of shards `N` (1..64)"),
		bin:    fs.String("bin", "", "`DIR` with the component binaries (default: this binary's folder)"),
		broker: fs.String("broker", "kfake", "`BROKER`: kfake (embedded) or kafka (Apache Kafka, installed with Maven into .tools)"),
	}
}

func (o options) layout() (localstack.Layout, string, error) {
	if *o.shards < 1 || *o.shards > 64 {
		return localstack.Layout{}, "", cli.Exit(cli.ExitUsage, errors.New("--shards must be 1..64"))
	}
	bin := *o.bin
	if bin == "" {
		exe, _ := os.Executable()
		bin = filepath.Dir(exe)
	}
	return localstack.DefaultLayout(*o.root, *o.shards), bin, nil
}

func main() {
	os.Exit(cli.App[Config]{
		Name: "stack",
		About: "runs the whole product on one machine on its embedded defaults (SPEC §6 addresses, data under ./.data): " +
			"MariaDB instances, the Kafka broker and every component, each log line prefixed by its component.",
		Defaults: defaults,
		Commands: []cli.Command[Config]{
			{Name: "run", About: "start everything; Ctrl-C stops it cleanly, a second run resumes on the same data",
				Setup: func(fs *flag.FlagSet) cli.Runner[Config] {
					o := flags(fs)
					return cli.NoArgs(func(ctx context.Context, _ *Config, _ []string) error {
						l, bin, err := o.layout()
						if err != nil {
							return err
						}
						if *o.broker != "kfake" && *o.broker != "kafka" {
							return cli.Exit(cli.ExitUsage, fmt.Errorf("--broker must be kfake or kafka, got %q", *o.broker))
						}
						return run(ctx, l, bin, *o.broker)
					})
				}},
			{Name: "tools", About: "install what make run and make test need that is missing (MariaDB, Java, Maven, docker-compose with apt; Apache Kafka with Maven)",
				Setup: cli.Run(cli.NoArgs(func(ctx context.Context, _ *Config, _ []string) error { return tools(ctx) }))},
			{Name: "migrate", About: "apply every migration and create the users: of the local databases (started and stopped), or of the servers in [migrate]",
				Setup: func(fs *flag.FlagSet) cli.Runner[Config] {
					o := flags(fs)
					return cli.NoArgs(func(ctx context.Context, cfg *Config, _ []string) error {
						if cfg.Migrate.ControlAddr != "" || len(cfg.Migrate.ShardAddrs) > 0 {
							return migrateServers(ctx, cfg)
						}
						l, _, err := o.layout()
						if err != nil {
							return err
						}
						return migrate(ctx, l)
					})
				}},
		},
	}.Main(os.Args[1:]))
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "%-16s| %s\n", "stack", fmt.Sprintf(format, args...))
}

func migrate(ctx context.Context, l localstack.Layout) error {
	dbs, err := localstack.StartDatabases(ctx, l, logf)
	if err != nil {
		return err
	}
	logf("migrations applied; stopping databases")
	dbs.Stop()
	return nil
}

// migrateServers migrates the databases of a deployment's servers, whose
// users its init scripts created; it waits for each server to answer.
func migrateServers(ctx context.Context, cfg *Config) error {
	m := cfg.Migrate
	type target struct {
		addr    string
		migrate func(context.Context, sqldb.Config) error
	}
	var targets []target
	if m.ControlAddr != "" {
		targets = append(targets, target{m.ControlAddr, localstack.MigrateControl})
	}
	for _, a := range m.ShardAddrs {
		targets = append(targets, target{a, localstack.MigrateShard})
	}
	for _, t := range targets {
		c := sqldb.Config{Addr: t.addr, User: m.User, Password: m.Password}
		deadline := time.Now().Add(m.Wait)
		for {
			err := t.migrate(ctx, c)
			if err == nil {
				logf("%s: migrated", t.addr)
				break
			}
			if ctx.Err() != nil || time.Now().After(deadline) {
				return fmt.Errorf("migrate %s: %w", t.addr, err)
			}
			logf("%s: %v; retrying", t.addr, err)
			time.Sleep(2 * time.Second)
		}
	}
	return nil
}

// tools installs everything missing in one apt-get run (Prometheus for
// promtool and the dashboard test, python3-venv for Schemathesis), then
// Kafka with Maven and Schemathesis with pip.
func tools(ctx context.Context) error {
	err := debpkg.Ensure(ctx, logf, localdb.ServerPackage, debpkg.Need{Bin: "java", Pkg: "openjdk-17-jre-headless"},
		debpkg.Need{Bin: "mvn", Pkg: "maven"}, debpkg.Need{Bin: "docker-compose", Pkg: "docker-compose"},
		debpkg.Need{Bin: "promtool", Pkg: "prometheus"}, schemathesis.Python)
	if err != nil {
		return err
	}
	dir, err := localkafka.DefaultDir()
	if err != nil {
		return err
	}
	installed, err := localkafka.Install(ctx, dir, logf)
	if err != nil {
		return err
	}
	if installed {
		logf("Apache Kafka %s installed in %s", localkafka.Version, dir)
	} else {
		logf("Apache Kafka %s already installed in %s", localkafka.Version, dir)
	}
	// The command-line tools: the tests compare reset-offsets with
	// kafka-consumer-groups.
	if dir, err = localkafka.DefaultToolsDir(); err != nil {
		return err
	}
	if installed, err = localkafka.InstallTools(ctx, dir, logf); err != nil {
		return err
	}
	if installed {
		logf("Apache Kafka %s command-line tools installed in %s", localkafka.Version, dir)
	}
	if _, err := schemathesis.Install(ctx, logf); err != nil {
		return err
	}
	return nil
}

// startBroker starts the stack's broker on 127.0.0.1:9092 with its data
// under the data root, and creates the capture's topics up front; stop
// stops it.
func startBroker(ctx context.Context, l localstack.Layout, kind string) (addrs []string, stop func(), err error) {
	specs := topics.DefaultSettings.CDC(topics.DefaultPrefix, topics.CDCTables)
	if kind == "kfake" {
		dir := filepath.Join(l.Root, "kafka")
		b, err := localstack.StartBroker(ctx, 9092, dir, specs...)
		if err != nil {
			return nil, nil, err
		}
		logf("Kafka broker (embedded kfake) on %s, data in %s", strings.Join(b.Addrs(), ","), dir)
		return b.Addrs(), b.Close, nil
	}
	home, err := localkafka.DefaultDir()
	if err != nil {
		return nil, nil, err
	}
	if _, err := localkafka.Install(ctx, home, logf); err != nil {
		return nil, nil, err
	}
	dir := filepath.Join(l.Root, "apache-kafka")
	c, err := localkafka.Start(ctx, localkafka.Options{Name: "kafka", Home: home, Dir: dir, Ports: []int{9092}, ControllerPorts: []int{9093}})
	if err != nil {
		return nil, nil, err
	}
	stop = func() {
		if err := c.Stop(); err != nil {
			logf("stop Apache Kafka: %v", err)
		}
	}
	if err := topics.Ensure(ctx, c.Brokers(), specs...); err != nil {
		stop()
		return nil, nil, err
	}
	logf("Apache Kafka %s on %s (KRaft), data in %s, log %s", c.Version(), strings.Join(c.Brokers(), ","), dir, c.LogPath(0))
	return c.Brokers(), stop, nil
}

func run(ctx context.Context, l localstack.Layout, bin, broker string) error {
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
	brokers, stopBroker, err := startBroker(ctx, l, broker)
	if err != nil {
		return err
	}
	defer func() {
		logf("stopping the Kafka broker")
		stopBroker()
	}()
	out := &localstack.PrefixWriter{W: os.Stdout}
	procs := localstack.Components(l, bin, out, localstack.Endpoints{PipelinePort: 8082, IngestPort: 8080,
		Brokers: strings.Join(brokers, ","), BalancePort: 8083, CachePort: 8084}, nil)
	started := procs[:0:0]
	defer func() {
		logf("stopping %s", localstack.Names(started))
		for i := len(started) - 1; i >= 0; i-- {
			started[i].Stop(15 * time.Second)
		}
	}()
	for _, p := range procs {
		if p.Name == "ingest" && len(brokers) > 0 {
			// The domain events of the transactional outbox go out from a
			// producer's first snapshot on: the producers stream before the
			// first events file is written.
			for i := range l.Shards {
				wctx, cancel := context.WithTimeout(ctx, time.Minute)
				err := localstack.WaitHTTP(wctx, fmt.Sprintf("http://127.0.0.1:%d/ready", 8100+i))
				cancel()
				if err != nil {
					logf("cdc-producer-%d not streaming yet (%v); starting ingest anyway", i, err)
				}
			}
		}
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
