package localkafka

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"text/template"
	"time"

	"github.com/shopledger/shopledger/internal/debpkg"
)

// Version is the Apache Kafka release that Install puts in place.
const Version = "4.1.1"

// ScalaVersion is the Scala build of that release (the kafka_2.13 artifact).
const ScalaVersion = "2.13"

// log4jVersion is the slf4j-to-log4j2 bridge; without it the broker's slf4j
// logging goes nowhere.
const log4jVersion = "2.24.3"

// marker is written last, so a folder without it is a half-finished install.
const marker = ".installed"

//go:embed pom.xml.tmpl
var pomText string

var pomTemplate = template.Must(template.New("pom").Parse(pomText))

// artifact is a Maven dependency of an install, and what to leave out of
// its runtime dependencies.
type artifact struct {
	Group, Artifact, Version string
	Exclude                  []artifact // Group and Artifact only
}

// bundle is what one install holds: a name (its pom's artifactId and its
// marker's content) and its dependencies.
type bundle struct {
	Name, About string
	Deps        []artifact
	// Files are written into the install's folder, by name.
	Files map[string][]byte
}

// toolsLog4j is the tools' logging configuration, toolsLog4jFile in their
// install.
//
//go:embed tools-log4j2.properties
var toolsLog4j []byte

const toolsLog4jFile = "log4j2.properties"

// log4jBridge routes slf4j logging into log4j2; without it the broker's
// logging goes nowhere.
var log4jBridge = artifact{Group: "org.apache.logging.log4j", Artifact: "log4j-slf4j-impl", Version: log4jVersion}

// broker is the broker's install: kafka_<Scala> and what it needs.
var broker = bundle{Name: "kafka_" + ScalaVersion + "-" + Version, About: "the jars of the broker (kafka_" + ScalaVersion + ")",
	Deps: []artifact{{Group: "org.apache.kafka", Artifact: "kafka_" + ScalaVersion, Version: Version}, log4jBridge}}

// tools is the command-line tools' install (kafka-tools: kafka-consumer-groups'
// ConsumerGroupCommand and the others), without Kafka Connect's runtime,
// which kafka-tools depends on for its Connect commands only.
var tools = bundle{Name: "kafka-tools-" + Version, About: "the command-line tools (kafka-tools)",
	Deps: []artifact{{Group: "org.apache.kafka", Artifact: "kafka-tools", Version: Version, Exclude: []artifact{
		{Group: "org.apache.kafka", Artifact: "connect-runtime"},
		{Group: "com.fasterxml.jackson.jakarta.rs", Artifact: "jackson-jakarta-rs-json-provider"}}}, log4jBridge},
	Files: map[string][]byte{toolsLog4jFile: toolsLog4j}}

// programs are what Install needs and the Debian packages providing them.
var programs = []struct {
	bin, pkg string
	err      error
}{
	{"java", "openjdk-17-jre-headless", ErrNoJava},
	{"mvn", "maven", ErrNoMaven},
}

// DefaultDir is where Kafka is installed unless told otherwise:
// $SHOPLEDGER_TOOLS_DIR/kafka-<Version> when that is set, else
// <module root>/.tools/kafka-<Version>, the module root being the nearest
// folder at or above the working directory that holds go.mod. It returns
// ErrNoModule when there is none.
func DefaultDir() (string, error) {
	toolsDir, err := ToolsDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(toolsDir, "kafka-"+Version), nil
}

// ToolsDir is where the project installs its tools: $SHOPLEDGER_TOOLS_DIR,
// else .tools at the module's root (git-ignored).
func ToolsDir() (string, error) {
	toolsDir := os.Getenv("SHOPLEDGER_TOOLS_DIR")
	if toolsDir == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		toolsDir = filepath.Join(root, ".tools")
	}
	return filepath.Abs(toolsDir)
}

// DefaultToolsDir is where InstallTools puts Kafka's command-line tools
// unless told otherwise: kafka-tools-<Version> next to DefaultDir.
func DefaultToolsDir() (string, error) {
	dir, err := DefaultDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(dir), "kafka-tools-"+Version), nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNoModule
		}
		dir = parent
	}
}

// finished reports whether dir holds a finished install.
func finished(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, marker))
	return err == nil
}

// Install puts Apache Kafka <Version> into dir: the jars of kafka_2.13 and
// its runtime dependencies, fetched from Maven Central by Maven into
// dir/libs. It returns false without calling Maven when dir already holds a
// finished install; a half-finished one is redone. Installers in other
// processes (go test runs packages in parallel) wait for each other on
// <dir>.lock. A missing java or mvn is installed with apt-get when running
// as root; otherwise Install returns ErrNoJava or ErrNoMaven.
func Install(ctx context.Context, dir string, log func(string, ...any)) (installed bool, err error) {
	return install(ctx, dir, broker, log)
}

// InstallTools puts Apache Kafka <Version>'s command-line tools (the
// kafka-tools jar: ConsumerGroupCommand, which kafka-consumer-groups.sh
// runs, and the others) into dir/libs, as Install does for the broker and
// with the same guarantees. It is a separate install, so that a broker's
// install is never touched while brokers run from it; Tool runs a tool.
func InstallTools(ctx context.Context, dir string, log func(string, ...any)) (installed bool, err error) {
	return install(ctx, dir, tools, log)
}

func install(ctx context.Context, dir string, b bundle, log func(string, ...any)) (installed bool, err error) {
	if dir, err = filepath.Abs(dir); err != nil {
		return false, err
	}
	if finished(dir) {
		return false, nil
	}
	if err := ensureTools(ctx, log); err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return false, err
	}
	unlock, err := lock(ctx, dir+".lock")
	if err != nil {
		return false, err
	}
	defer unlock()
	if finished(dir) { // another installer finished while we waited
		return false, nil
	}
	log("installing %s, Apache Kafka %s, into %s with Maven", b.About, Version, dir)
	start := time.Now()
	if err := fetch(ctx, dir, b); err != nil {
		return false, err
	}
	log("installed %s, Apache Kafka %s, in %s", b.About, Version, time.Since(start).Round(100*time.Millisecond))
	return true, nil
}

// fetch runs Maven into a temporary sibling of dir and renames it into place
// once complete, so dir never holds a partial copy that looks finished.
// The caller holds the lock.
func fetch(ctx context.Context, dir string, b bundle) error {
	prefix := filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+"-")
	stale, _ := filepath.Glob(prefix + "*") // left by installers that were killed
	for _, s := range stale {
		os.RemoveAll(s)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(prefix)+"*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp makes it private
		return err
	}
	var pom bytes.Buffer
	if err := pomTemplate.Execute(&pom, struct {
		bundle
		Kafka string
	}{b, Version}); err != nil {
		return fmt.Errorf("pom template: %w", err)
	}
	pomPath := filepath.Join(tmp, "pom.xml")
	if err := os.WriteFile(pomPath, pom.Bytes(), 0o644); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "mvn", "-B", "-q", "--strict-checksums", "-f", pomPath,
		"dependency:copy-dependencies", "-DoutputDirectory="+filepath.Join(tmp, "libs"), "-DincludeScope=runtime")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mvn copy-dependencies for %s: %w\n%s", b.Name, err, out)
	}
	for name, content := range b.Files {
		if err := os.WriteFile(filepath.Join(tmp, name), content, 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, marker), []byte(b.Name+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil { // a half-finished install
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("install into %s: %w", dir, err)
	}
	return nil
}

// lock takes an exclusive flock on path, polling so that ctx can end the
// wait. Closing the file releases it.
func lock(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for lock %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ensureTools installs missing tools with apt-get when the process may
// (root, apt-get present); otherwise it returns the errors naming them.
func ensureTools(ctx context.Context, log func(string, ...any)) error {
	var needs []debpkg.Need
	for _, t := range programs {
		needs = append(needs, debpkg.Need{Bin: t.bin, Pkg: t.pkg})
	}
	if err := debpkg.Ensure(ctx, log, needs...); err != nil && !errors.Is(err, debpkg.ErrMissing) {
		return err
	}
	return missingTools()
}

// missingTools returns ErrNoJava and/or ErrNoMaven for what is not on PATH,
// or nil.
func missingTools() error {
	var errs []error
	for _, t := range programs {
		if !debpkg.Have(t.bin) {
			errs = append(errs, t.err)
		}
	}
	return errors.Join(errs...)
}
