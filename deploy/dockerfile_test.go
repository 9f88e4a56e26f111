package deploy_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDockerfile checks deploy/Dockerfile lightly: it builds every binary
// (the compose file's and the Makefile's) into /usr/local/bin, without cgo
// and with the version stamped; the final image is distroless and non-root
// with /shared owned by that user; no ENTRYPOINT fixes one binary; and
// .dockerignore keeps history, data and secrets out of the build context.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// Join continued lines, so that one RUN is one line.
	df := strings.ReplaceAll(string(b), "\\\n", " ")
	var froms, builds []string
	for _, line := range strings.Split(df, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			froms = append(froms, fields[1])
		case "ENTRYPOINT", "CMD":
			t.Errorf("Dockerfile: %q: each compose service sets its binary as its entrypoint", line)
		case "RUN":
			if strings.Contains(line, "go build") {
				builds = append(builds, line)
			}
		}
	}
	if len(froms) < 2 || froms[0] != "golang:1.26" || froms[len(froms)-1] != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("Dockerfile stages %q, want golang:1.26 first and gcr.io/distroless/static-debian12:nonroot last", froms)
	}
	if len(builds) != 1 {
		t.Fatalf("Dockerfile has %d go build lines, want one: %q", len(builds), builds)
	}
	build := builds[0]
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "internal/cli.version=${VERSION}", "internal/cli.commit=${COMMIT}"} {
		if !strings.Contains(build, want) {
			t.Errorf("Dockerfile: go build lacks %s: %s", want, build)
		}
	}
	built := strings.Fields(build)
	for name, pkg := range commands {
		if !slices.Contains(built, pkg) {
			t.Errorf("Dockerfile does not build %s (%s)", name, pkg)
		}
	}
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^CMDS\s*:=(.*)$`).FindStringSubmatch(string(mk)); m == nil {
		t.Error("Makefile: no CMDS line")
	} else {
		for _, pkg := range strings.Fields(m[1]) {
			if !slices.Contains(built, pkg) {
				t.Errorf("Dockerfile does not build %s of the Makefile's CMDS", pkg)
			}
		}
	}
	for _, re := range []string{
		`(?m)^COPY --from=\S+ /out/bin/ /usr/local/bin/$`,
		`mkdir -p /out/shared`,
		`(?m)^COPY --from=\S+ --chown=65532:65532 /out/shared /shared$`,
		`(?m)^USER 65532:65532$`,
	} {
		if !regexp.MustCompile(re).MatchString(df) {
			t.Errorf("Dockerfile lacks %s", re)
		}
	}

	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(ignore), "\n")
	for _, want := range []string{".git", ".env", ".data", "bin", "**/*.test"} {
		if !slices.Contains(lines, want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}
