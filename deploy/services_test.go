package deploy_test

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/shopledger/shopledger/internal/config"
	"github.com/shopledger/shopledger/schema"
)

// app is a shopledger service of the compose file with the configuration
// its binary loads from the service's environment.
type app struct {
	name string
	svc  service
	bin  string
	cfg  map[string]string // key → value as `config` prints it
}

// buildCommands builds every binary of the image into a temporary folder.
func buildCommands(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"build", "-o", dir + "/"}
	for _, pkg := range commands {
		args = append(args, pkg)
	}
	cmd := exec.CommandContext(t.Context(), "go", args...)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return dir
}

// loadConfig runs `<bin> config --strict args...` with exactly env (and
// PATH) and returns the effective configuration.
func loadConfig(bin string, env map[string]string, args []string) (map[string]string, error) {
	cmd := exec.Command(bin, append([]string{"config", "--strict"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", filepath.Base(bin), strings.Join(cmd.Args[1:], " "), err, stderr.String())
	}
	cfg := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		kv, _, _ := strings.Cut(line, "  # ")
		k, v, ok := strings.Cut(kv, " = ")
		if !ok {
			return nil, fmt.Errorf("%s config: unreadable line %q", filepath.Base(bin), line)
		}
		cfg[k] = v
	}
	return cfg, nil
}

// values reads a printed value as a list: ["a", "b"], "a" or a bare value.
func values(v string) []string {
	if inner, ok := strings.CutPrefix(v, "["); ok {
		inner = strings.TrimSuffix(inner, "]")
		if inner == "" {
			return nil
		}
		var out []string
		for _, s := range strings.Split(inner, ", ") {
			out = append(out, unquote(s))
		}
		return out
	}
	if s := unquote(v); s != "" {
		return []string{s}
	}
	return nil
}

func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

// isAddress reports whether a key holds where to connect.
func isAddress(key string) bool {
	last := key[strings.LastIndex(key, ".")+1:]
	return last == "addr" || last == "addrs" || last == "brokers" || last == "url" ||
		strings.HasSuffix(last, "_addr") || strings.HasSuffix(last, "_addrs")
}

// hostPortOf splits an address or URL.
func hostPortOf(addr string) (string, string, error) {
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		return u.Hostname(), u.Port(), nil
	}
	return net.SplitHostPort(addr)
}

// loadApps runs every shopledger service's binary on its environment.
func loadApps(t *testing.T, p project) map[string]*app {
	t.Helper()
	dir := buildCommands(t)
	repo, _ := filepath.Abs("..")
	apps := map[string]*app{}
	var image string
	for name, s := range p.Services {
		if len(s.Entrypoint) == 0 || !strings.HasPrefix(s.Entrypoint[0], binDir) {
			continue
		}
		a := &app{name: name, svc: s, bin: strings.TrimPrefix(s.Entrypoint[0], binDir)}
		if _, ok := commands[a.bin]; !ok || len(s.Entrypoint) > 1 {
			t.Errorf("%s: entrypoint %q is not one of the image's binaries %v", name, s.Entrypoint, slices.Sorted(maps.Keys(commands)))
			continue
		}
		if image == "" {
			image = s.Image
		}
		if s.Image != image || s.Build == nil || s.Build.Context != repo || s.Build.Dockerfile != "deploy/Dockerfile" {
			t.Errorf("%s: image %s built from %+v; want every shopledger service on the one image of deploy/Dockerfile", name, s.Image, s.Build)
		}
		args := s.Command
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			args = args[1:] // the command; config takes its flags
		}
		cfg, err := loadConfig(filepath.Join(dir, a.bin), s.Environment, args)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		a.cfg = cfg
		apps[name] = a
		if hc := s.Healthcheck; hc != nil {
			if len(hc.Test) < 3 || hc.Test[0] != "CMD" || hc.Test[1] != s.Entrypoint[0] || hc.Test[2] != "healthcheck" {
				t.Errorf("%s: healthcheck %q, want [CMD %s healthcheck]", name, hc.Test, s.Entrypoint[0])
				continue
			}
			// The healthcheck is another process with the same environment:
			// it must see the configuration (the port) the service has.
			hcfg, err := loadConfig(filepath.Join(dir, a.bin), s.Environment, hc.Test[3:])
			if err != nil || !maps.Equal(hcfg, cfg) {
				t.Errorf("%s: the healthcheck's configuration differs from the service's (set the shard with SHARD, not --shard): %v", name, err)
			}
		}
	}
	return apps
}

// TestComposeServices runs `config --strict` of every shopledger service
// with exactly its environment: every variable is a key of that binary and
// valid. Then it checks what the services connect to: a service of the
// file, on its port, waited for, as a user of schema.Roles on that server
// with that user's password, never root.
func TestComposeServices(t *testing.T) {
	p, vars := loadCompose(t)
	apps := loadApps(t, p)
	if len(apps) == 0 {
		t.Fatal("no shopledger service found")
	}
	kinds := map[string]schema.Server{} // MySQL service → kind of server
	for name, s := range p.Services {
		for _, m := range p.mounts(s) {
			if k, ok := kindOf(m.source); ok && strings.HasPrefix(m.target, "/docker-entrypoint-initdb.d/") {
				kinds[name] = k
			}
		}
	}
	var migrator string
	for name, a := range apps {
		if a.bin == "stack" && slices.Equal(a.svc.Command, []string{"migrate"}) {
			migrator = name
		}
	}
	if migrator == "" {
		t.Fatal("no service runs `stack migrate`")
	}
	for _, a := range slices.SortedFunc(maps.Values(apps), func(a, b *app) int { return strings.Compare(a.name, b.name) }) {
		checkConnections(t, p, apps, kinds, a)
		checkUsers(t, kinds, vars, a)
		usesDB := slices.ContainsFunc(slices.Collect(maps.Keys(a.cfg)), func(k string) bool {
			return isAddress(k) && slices.ContainsFunc(values(a.cfg[k]), func(addr string) bool {
				host, _, _ := hostPortOf(addr)
				return kinds[host] != ""
			})
		})
		if usesDB && a.name != migrator && a.svc.DependsOn[migrator].Condition != "service_completed_successfully" {
			t.Errorf("%s uses a database but does not wait for %s to complete", a.name, migrator)
		}
		if dir, ok := a.cfg["shared_dir"]; ok {
			dir = unquote(dir)
			if !slices.ContainsFunc(p.mounts(a.svc), func(m mount) bool {
				return m.named && m.source == "shared" && m.target == dir && (!m.ro || a.svc.Restart == "no")
			}) {
				t.Errorf("%s: shared_dir %s is not the named volume shared (writable)", a.name, dir)
			}
		}
		for _, port := range a.svc.Ports {
			s, _ := port.(string)
			target := strings.TrimSuffix(s[strings.LastIndex(s, ":")+1:], "/tcp")
			if target != a.cfg["server.port"] || unquote(a.cfg["server.host"]) != "0.0.0.0" {
				t.Errorf("%s publishes %v, but serves on %s:%s", a.name, port, a.cfg["server.host"], a.cfg["server.port"])
			}
		}
	}
	checkShards(t, apps, migrator)
}

// dependsOn lists everything name waits for, directly or not.
func dependsOn(p project, name string) map[string]bool {
	seen := map[string]bool{}
	next := []string{name}
	for len(next) > 0 {
		s := p.Services[next[0]]
		next = next[1:]
		for dep := range s.DependsOn {
			if !seen[dep] {
				seen[dep] = true
				next = append(next, dep)
			}
		}
	}
	return seen
}

func checkConnections(t *testing.T, p project, apps map[string]*app, kinds map[string]schema.Server, a *app) {
	t.Helper()
	deps := dependsOn(p, a.name)
	for _, key := range slices.Sorted(maps.Keys(a.cfg)) {
		if !isAddress(key) {
			continue
		}
		addrs := values(a.cfg[key])
		if len(addrs) == 0 {
			t.Errorf("%s: %s is not set (its default is an address on 127.0.0.1)", a.name, key)
		}
		for _, addr := range addrs {
			host, port, err := hostPortOf(addr)
			if err != nil {
				t.Errorf("%s: %s = %q: %v", a.name, key, addr, err)
				continue
			}
			target, ok := p.Services[host]
			if !ok {
				t.Errorf("%s: %s = %q names no service", a.name, key, addr)
				continue
			}
			want := "3306"
			switch {
			case strings.Contains(target.Image, "kafka"):
				want = "9092"
			case apps[host] != nil:
				want = apps[host].cfg["server.port"]
				if h := unquote(apps[host].cfg["server.host"]); h != "0.0.0.0" {
					t.Errorf("%s connects to %s, which listens on %s only", a.name, host, h)
				}
			case kinds[host] == "":
				t.Errorf("%s: %s = %q is neither MySQL, Kafka nor a shopledger service", a.name, key, addr)
			}
			if port != want {
				t.Errorf("%s: %s = %q, but %s listens on %s", a.name, key, addr, host, want)
			}
			if !deps[host] {
				t.Errorf("%s connects to %s (%s) without waiting for it", a.name, host, key)
			}
		}
	}
}

// checkUsers checks every <prefix>.user of a service: not root, a role on
// each server the service reaches under <prefix>, with its password.
func checkUsers(t *testing.T, kinds map[string]schema.Server, vars map[string]string, a *app) {
	t.Helper()
	for key, v := range a.cfg {
		prefix, ok := strings.CutSuffix(key, ".user")
		if !ok {
			continue
		}
		user := unquote(v)
		if user == "root" || user == "" {
			t.Errorf("%s: %s = %q; every component has its own user (schema.Roles)", a.name, key, user)
			continue
		}
		role := schema.Role{User: user}
		if pw := a.svc.Environment[config.EnvName(prefix+".password")]; pw != vars[role.PasswordEnv()] {
			t.Errorf("%s: %s is not %s's password (%s from .env)", a.name, config.EnvName(prefix+".password"), user, role.PasswordEnv())
		}
		for k, v := range a.cfg {
			if !strings.HasPrefix(k, prefix+".") || !isAddress(k) {
				continue
			}
			for _, addr := range values(v) {
				host, _, _ := hostPortOf(addr)
				if kind, ok := kinds[host]; ok && !slices.ContainsFunc(schema.RolesOf(kind), func(r schema.Role) bool { return r.User == user }) {
					t.Errorf("%s: user %s (%s) has no role on %s, a %s server", a.name, user, key, host, kind)
				}
			}
		}
	}
}

// checkShards checks that every service sees the same shards: one worker
// and one producer per shard 0..N-1 on the same server, and the shard lists
// of the consumers, the audit and the migrator in shard order.
func checkShards(t *testing.T, apps map[string]*app, migrator string) {
	t.Helper()
	n := -1
	for _, a := range apps {
		for _, key := range []string{"pipeline.shards_count", "shards.count"} {
			if v, ok := a.cfg[key]; ok {
				c, _ := strconv.Atoi(v)
				if n >= 0 && c != n {
					t.Errorf("%s: %s = %d, others have %d", a.name, key, c, n)
				}
				n = c
			}
		}
	}
	addrs := map[string][]string{"shard-worker": make([]string, n), "cdc-producer": make([]string, n)}
	for _, a := range apps {
		list, ok := addrs[a.bin]
		if !ok {
			continue
		}
		i, _ := strconv.Atoi(a.cfg["shard"])
		if i < 0 || i >= n || list[i] != "" {
			t.Errorf("%s: shard %s is out of 0..%d or taken twice", a.name, a.cfg["shard"], n-1)
			continue
		}
		list[i] = unquote(a.cfg["database.addr"])
	}
	want := addrs["shard-worker"]
	if !slices.Equal(addrs["cdc-producer"], want) || slices.Contains(want, "") {
		t.Errorf("shards of the workers %q and of the cdc-producers %q differ or have gaps", want, addrs["cdc-producer"])
	}
	for _, a := range apps {
		for _, key := range []string{"shards.addrs", "migrate.shard_addrs"} {
			if v, ok := a.cfg[key]; ok && !slices.Equal(values(v), want) {
				t.Errorf("%s: %s = %s, want the shards in order %q", a.name, key, v, want)
			}
		}
	}
	if _, ok := apps[migrator].cfg["migrate.shard_addrs"]; !ok {
		t.Errorf("%s has no migrate.shard_addrs", migrator)
	}
}
