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
