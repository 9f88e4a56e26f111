package localkafka

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
)

// ConsumerGroupCommand is the main class of kafka-consumer-groups.sh.
const ConsumerGroupCommand = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"

// Tool returns the command that runs the Kafka command-line tool whose main
// class is main (ConsumerGroupCommand, say) from the tools install at home
// (see InstallTools) with args, as Kafka's bin/*.sh scripts run them: its
// answer on stdout, its logging on stderr. It returns ErrNoJava without
// java and ErrNotInstalled when home holds no finished install.
func Tool(ctx context.Context, home, main string, args ...string) (*exec.Cmd, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, ErrNoJava
	}
	if !finished(home) {
		return nil, fmt.Errorf("%s: %w", home, ErrNotInstalled)
	}
	return exec.CommandContext(ctx, java, append([]string{"-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-cp", filepath.Join(home, "libs", "*"), "-Dlog4j2.configurationFile=" + filepath.Join(home, toolsLog4jFile), main}, args...)...), nil
}
