package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/shopledger/shopledger/schema"
)

const composeFile = "../docker-compose.yml"

// commands are the binaries of the image, by name, with their packages.
var commands = map[string]string{
	"ingest": "./ingest", "pipelineapi": "./pipelineapi", "shard-splitter": "./shard-splitter",
	"shard-worker": "./shard-worker", "cdc-producer": "./cdc-producer", "balance": "./balance",
	"cache": "./cache", "audit": "./audit", "stack": "./deploy/stack",
}

// binDir is where the image puts the binaries.
const binDir = "/usr/local/bin/"

// The part of `docker-compose config` output the tests read.
type project struct {
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

type service struct {
	Image       string            `yaml:"image"`
	Build       *build            `yaml:"build"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Ports    []any    `yaml:"ports"`
	Volumes  []string `yaml:"volumes"`
	Restart  string   `yaml:"restart"`
	Profiles []string `yaml:"profiles"`
}

type build struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

// mount is a volume entry: a named volume or a bind mount.
type mount struct {
	source, target string
	named, ro      bool
}

func (p project) mounts(s service) []mount {
	var out []mount
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		m := mount{source: parts[0], target: parts[len(parts)-1]}
		if len(parts) == 3 {
			m.target, m.ro = parts[1], parts[2] == "ro"
		}
		_, m.named = p.Volumes[m.source]
		out = append(out, m)
	}
	return out
}

// interpolated lists the variables a compose file interpolates ($$ is a
// literal dollar).
func interpolated(text string) []string {
	text = strings.ReplaceAll(text, "$$", "")
	var names []string
	for _, m := range regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(text, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	slices.Sort(names)
	return names
}

// envExample reads the names and values of .env.example.
func envExample(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf(".env.example: %q is no NAME=value line", line)
		}
		if _, dup := vars[name]; dup {
			t.Errorf(".env.example lists %s twice", name)
		}
		vars[name] = value
	}
	return vars
}

// testValue is the value the tests give variable name: distinct per
// variable, so a value in the output says where it came from.
func testValue(name string) string {
	return "test-" + strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// composeConfig runs `docker-compose config` with envFile and no other
// environment than PATH, returning its output and error.
func composeConfig(t *testing.T, envFile string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "docker-compose", "-f", composeFile, "--env-file", envFile, "config")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// loadCompose checks .env.example against the compose file and returns the
// project as docker-compose renders it with a test value for each variable,
// and those values.
func loadCompose(t *testing.T) (project, map[string]string) {
	t.Helper()
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Skip("docker-compose not found (apt-get install docker-compose; `make test` installs it): the compose file is not checked")
	}
	raw, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	example := envExample(t)
	var listed []string
	for name := range example {
		listed = append(listed, name)
	}
	slices.Sort(listed)
	if used := interpolated(string(raw)); !slices.Equal(used, listed) {
		t.Errorf(".env.example lists %v; docker-compose.yml interpolates %v", listed, used)
	}

	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.env")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := composeConfig(t, empty); err == nil || !strings.Contains(out, "_PASSWORD") || !strings.Contains(out, "see .env.example") {
		t.Errorf("docker-compose config without .env: err %v, output %q; want a failure naming a missing password and .env.example", err, out)
	}

	values := map[string]string{}
	var env strings.Builder
	for _, name := range listed {
		values[name] = testValue(name)
		env.WriteString(name + "=" + values[name] + "\n")
	}
	envFile := filepath.Join(dir, "test.env")
	if err := os.WriteFile(envFile, []byte(env.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := composeConfig(t, envFile)
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	var p project
	if err := yaml.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("docker-compose config output: %v\n%s", err, out)
	}
	if len(p.Services) == 0 {
		t.Fatalf("docker-compose config output has no services:\n%s", out)
	}
	return p, values
}

// TestComposeInfrastructure checks the MySQL servers, Kafka, the
// published ports, restarts, healthchecks, dependencies and secrets.
func TestComposeInfrastructure(t *testing.T) {
	p, values := loadCompose(t)
	secrets := map[string]bool{}
	for _, v := range values {
		secrets[v] = true
	}
	completedBy := map[string]bool{} // services others wait to have exited 0
	for _, s := range p.Services {
		for dep, d := range s.DependsOn {
			if d.Condition == "service_completed_successfully" {
				completedBy[dep] = true
			}
		}
	}
	serverIDs := map[string]string{}
	var published []string
	for name, s := range p.Services {
		oneShot := s.Restart == "no"
		switch {
		case oneShot && !completedBy[name] && len(s.Profiles) == 0:
			t.Errorf("%s: restart %q, but nothing waits for it to complete and it is in no profile", name, s.Restart)
		case !oneShot && s.Restart != "unless-stopped":
			t.Errorf("%s: restart %q, want unless-stopped (or \"no\" for a one-shot job)", name, s.Restart)
		case !oneShot && (s.Healthcheck == nil || len(s.Healthcheck.Test) == 0):
			t.Errorf("%s has no healthcheck", name)
		}
		if s.Healthcheck != nil {
			for _, arg := range s.Healthcheck.Test {
				for v := range secrets {
					if strings.Contains(arg, v) && strings.Contains(v, "password") {
						t.Errorf("%s: healthcheck %q puts a password in the process list", name, s.Healthcheck.Test)
					}
				}
			}
		}
		for dep, d := range s.DependsOn {
			target, ok := p.Services[dep]
			switch {
			case !ok:
				t.Errorf("%s depends on %s, which is no service", name, dep)
			case d.Condition == "service_healthy" && target.Healthcheck == nil:
				t.Errorf("%s waits for %s to be healthy, which has no healthcheck", name, dep)
			case d.Condition == "service_completed_successfully" && target.Restart != "no":
				t.Errorf("%s waits for %s to complete, which restarts (%q)", name, dep, target.Restart)
			case d.Condition != "service_healthy" && d.Condition != "service_completed_successfully":
				t.Errorf("%s depends on %s with condition %q; want service_healthy or service_completed_successfully", name, dep, d.Condition)
			}
		}
		for key, v := range s.Environment {
			if strings.Contains(key, "PASSWORD") && !secrets[v] {
				t.Errorf("%s: %s is not taken from .env (a literal password?)", name, key)
			}
		}
		for _, port := range s.Ports {
			published = append(published, name+" "+hostPort(t, port))
		}
		for _, arg := range s.Command {
			if strings.Contains(arg, "default-authentication-plugin") {
				t.Errorf("%s: %s (removed in MySQL 8.4)", name, arg)
			}
		}
		if strings.HasPrefix(s.Image, "mysql") {
			checkMySQL(t, p, name, s, values)
			for _, arg := range s.Command {
				if id, ok := strings.CutPrefix(arg, "--server-id="); ok {
					if other, dup := serverIDs[id]; dup {
						t.Errorf("%s and %s share server-id %s", name, other, id)
					}
					serverIDs[id] = name
				}
			}
		}
		if strings.Contains(s.Image, "kafka") {
			checkKafka(t, p, name, s)
		}
	}
	slices.Sort(published)
	// SPEC §6: the REST ports and the Prometheus, Grafana and Jaeger UIs,
	// and nothing else (MySQL and Kafka stay inside).
	want := []string{"balance 127.0.0.1:8083", "cache 127.0.0.1:8084", "grafana 127.0.0.1:3000", "ingest 127.0.0.1:8080",
		"jaeger 127.0.0.1:16686", "pipelineapi 127.0.0.1:8082", "prometheus 127.0.0.1:9090"}
	if !slices.Equal(published, want) {
		t.Errorf("published ports %q, want %q", published, want)
	}
}

// hostPort renders a published port of the config output, "ip:port" (ip
// empty for all interfaces).
func hostPort(t *testing.T, port any) string {
	switch p := port.(type) {
	case string: // [ip:]published:target/proto
		parts := strings.Split(strings.TrimSuffix(p, "/tcp"), ":")
		if len(parts) == 3 {
			return parts[0] + ":" + parts[1]
		}
		if len(parts) == 2 {
			return ":" + parts[0]
		}
	case map[string]any:
		ip, _ := p["host_ip"].(string)
		return ip + ":" + strings.TrimSpace(yamlString(p["published"]))
	}
	t.Errorf("unreadable port %v", port)
	return ""
}

func yamlString(v any) string {
	b, _ := yaml.Marshal(v)
	return string(b)
}

func checkMySQL(t *testing.T, p project, name string, s service, values map[string]string) {
	t.Helper()
	if s.Image != "mysql:8.4" {
		t.Errorf("%s: image %s, want mysql:8.4 (LTS)", name, s.Image)
	}
	var data, init bool
	for _, m := range p.mounts(s) {
		switch {
		case m.target == "/var/lib/mysql":
			data = m.named
		case strings.HasPrefix(m.target, "/docker-entrypoint-initdb.d/"):
			init = true
			kind, ok := kindOf(m.source)
			if !ok {
				t.Errorf("%s: init script %s is none of deploy/%v", name, m.source, initScripts)
				continue
			}
			if !m.ro {
				t.Errorf("%s: mount %s read-only", name, m.source)
			}
			if kind == schema.ShardServer {
				for _, flag := range []string{"--gtid-mode=ON", "--enforce-gtid-consistency=ON", "--binlog-format=ROW",
					"--binlog-row-image=FULL", "--binlog-row-metadata=FULL", "--local-infile=ON"} {
					if !slices.Contains(s.Command, flag) {
						t.Errorf("%s: a shard without %s (command %q)", name, flag, s.Command)
					}
				}
				if !slices.ContainsFunc(s.Command, func(a string) bool { return strings.HasPrefix(a, "--log-bin") }) {
					t.Errorf("%s: a shard without --log-bin", name)
				}
			}
			for _, env := range append(passwordEnvs(kind), "MYSQL_ROOT_PASSWORD") {
				if s.Environment[env] != values[env] {
					t.Errorf("%s: %s = %q, want it from .env (%q) for the init script", name, env, s.Environment[env], values[env])
				}
			}
		}
	}
	if !data {
		t.Errorf("%s: /var/lib/mysql is not on a named volume", name)
	}
	if !init {
		t.Errorf("%s: no init script in /docker-entrypoint-initdb.d", name)
	}
	if s.Environment["MYSQL_ROOT_HOST"] != "localhost" {
		t.Errorf("%s: MYSQL_ROOT_HOST = %q, want localhost (no root over the network)", name, s.Environment["MYSQL_ROOT_HOST"])
	}
}

func checkKafka(t *testing.T, p project, name string, s service) {
	t.Helper()
	if s.Image != "apache/kafka:4.1.1" {
		t.Errorf("%s: image %s, want apache/kafka:4.1.1", name, s.Image)
	}
	env := s.Environment
	dir := env["KAFKA_LOG_DIRS"]
	if !slices.ContainsFunc(p.mounts(s), func(m mount) bool { return m.named && m.target == dir }) {
		t.Errorf("%s: KAFKA_LOG_DIRS %q is not a named volume: topics and offsets are lost on recreate", name, dir)
	}
	if dir != "/var/lib/kafka/data" {
		t.Errorf("%s: KAFKA_LOG_DIRS %q, want the image's /var/lib/kafka/data (owned by its user)", name, dir)
	}
	for key, want := range map[string]string{"KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1"} {
		if env[key] != want {
			t.Errorf("%s: %s = %q, want %q", name, key, env[key], want)
		}
	}
	if env["CLUSTER_ID"] == "" {
		t.Errorf("%s: no fixed CLUSTER_ID: a recreated container would not match its formatted log dir", name)
	}
}
