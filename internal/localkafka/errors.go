package localkafka

import "errors"

// ErrNoJava is returned by Install and Start when no java is on PATH and
// Install may not install it (not root, or no apt-get). Its message says what
// to install.
var ErrNoJava = errors.New("no java found: install it with `apt-get install -y openjdk-17-jre-headless` (or put Java 17+ on PATH)")

// ErrNoMaven is returned by Install when no mvn is on PATH and Install may
// not install it (not root, or no apt-get). Its message says what to install.
var ErrNoMaven = errors.New("no mvn found: install it with `apt-get install -y maven` (or put Maven 3 on PATH)")

// ErrNoModule is returned by DefaultDir when SHOPLEDGER_TOOLS_DIR is not set
// and no folder above the working directory holds a go.mod.
var ErrNoModule = errors.New("no go.mod above the working directory: set SHOPLEDGER_TOOLS_DIR")

// ErrNotInstalled is returned by Start when Options.Home holds no finished
// install.
var ErrNotInstalled = errors.New("no finished Apache Kafka install: run localkafka.Install first")

// ErrPortTaken is returned by Start when a broker or controller port is
// already in use on 127.0.0.1 (is another stack running?).
var ErrPortTaken = errors.New("port is taken")

// ErrExited is returned by Start, Cluster.Start and Cluster.Restart when a
// node's process exits before it serves; the error carries the tail of the
// node's broker.log.
var ErrExited = errors.New("exited during start-up")

// ErrNotReady is returned by Start, Cluster.Start and Cluster.Restart when a
// node does not serve within 90 s; the error carries the tail of the node's
// broker.log.
var ErrNotReady = errors.New("not serving")

// ErrStopTimeout is returned by Cluster.Stop for each node that did not exit
// within 30 s of SIGTERM and was killed.
var ErrStopTimeout = errors.New("did not stop within 30s; killed")
