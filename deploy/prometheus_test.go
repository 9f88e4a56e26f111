package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// promtool runs Debian's promtool (package prometheus, which `make tools`
// installs) in deploy/prometheus.
func promtool(t *testing.T, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Fatalf("promtool not found: run `make tools` (it installs Debian's prometheus package): %v", err)
	}
	cmd := exec.CommandContext(t.Context(), "promtool", args...)
	cmd.Dir = "prometheus"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestPrometheusConfig checks both scrape configurations, the alert rules
// and their unit tests with promtool, that every alert has a unit test in
// which it fires, and that the scrape targets are the compose services and
// the local stack's SPEC §6 addresses.
func TestPrometheusConfig(t *testing.T) {
	promtool(t, "check", "config", "prometheus.yml", "prometheus-local.yml")
	rules, _ := filepath.Glob("prometheus/rules/*.yml")
	tests, _ := filepath.Glob("prometheus/tests/*.yml")
	if len(rules) == 0 || len(tests) == 0 {
		t.Fatalf("rules %v, tests %v: want both", rules, tests)
	}
	promtool(t, append([]string{"check", "rules"}, trimDir(rules)...)...)
	promtool(t, append([]string{"test", "rules"}, trimDir(tests)...)...)

	var alerts []string
	for _, f := range rules {
		var rf struct {
			Groups []struct {
				Rules []struct {
					Alert string `yaml:"alert"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		readYAML(t, f, &rf)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					alerts = append(alerts, r.Alert)
				}
			}
		}
	}
	fired := map[string]bool{}
	for _, f := range tests {
		var tf struct {
			Tests []struct {
				AlertRuleTest []struct {
					Alertname string `yaml:"alertname"`
					ExpAlerts []any  `yaml:"exp_alerts"`
				} `yaml:"alert_rule_test"`
			} `yaml:"tests"`
		}
		readYAML(t, f, &tf)
		for _, tc := range tf.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fired[a.Alertname] = true
				}
			}
		}
	}
	for _, a := range alerts {
		if !fired[a] {
			t.Errorf("alert %s has no unit test in which it fires (deploy/prometheus/tests)", a)
		}
	}

	p, _ := loadCompose(t)
	for _, target := range scrapeTargets(t, "prometheus/prometheus.yml") {
		host, _, _ := strings.Cut(target, ":")
		if _, ok := p.Services[host]; !ok && host != "localhost" {
			t.Errorf("prometheus.yml scrapes %s, which is no compose service", target)
		}
	}
	local := scrapeTargets(t, "prometheus/prometheus-local.yml")
	want := []string{"127.0.0.1:8080", "127.0.0.1:8082", "127.0.0.1:8083", "127.0.0.1:8084", "127.0.0.1:8085",
		"127.0.0.1:8090", "127.0.0.1:8091", "127.0.0.1:8100", "127.0.0.1:8101"}
	slices.Sort(local)
	if !slices.Equal(local, want) {
		t.Errorf("prometheus-local.yml scrapes %v, want the SPEC §6 addresses of `make run` %v", local, want)
	}
}

func trimDir(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = strings.TrimPrefix(p, "prometheus/")
	}
	return out
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func scrapeTargets(t *testing.T, path string) []string {
	t.Helper()
	var cfg struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, path, &cfg)
	var out []string
	for _, sc := range cfg.ScrapeConfigs {
		for _, s := range sc.StaticConfigs {
			out = append(out, s.Targets...)
		}
	}
	return out
}
