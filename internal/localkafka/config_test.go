package localkafka

import (
	"strings"
	"testing"
)

func TestClusterID(t *testing.T) {
	dir := t.TempDir()
	id, err := clusterID(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := clusterID(dir); again != id || err != nil {
		t.Errorf("clusterID again = %q, %v, want %q, nil", again, err, id)
	}
	// One id in 64 would start with '-' if nothing prevented it.
	for range 500 {
		id, err := clusterID(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != 22 || strings.HasPrefix(id, "-") {
			t.Fatalf("clusterID() = %q, want 22 characters not starting with '-'", id)
		}
	}
}

func TestServerProperties(t *testing.T) {
	for _, tc := range []struct {
		name  string
		o     Options
		node  int
		wants []string
	}{
		{"one node", Options{Nodes: 1, Ports: []int{9092}, ControllerPorts: []int{9093}}, 0, []string{
			"node.id=1\n",
			"controller.quorum.voters=1@127.0.0.1:9093\n",
			"listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n",
			"advertised.listeners=PLAINTEXT://127.0.0.1:9092\n",
			"offsets.topic.replication.factor=1\n",
			"transaction.state.log.min.isr=1\n",
			"auto.create.topics.enable=false\n",
		}},
		{"third of three", Options{Nodes: 3, Ports: []int{1, 2, 3}, ControllerPorts: []int{4, 5, 6}}, 2, []string{
			"node.id=3\n",
			"controller.quorum.voters=1@127.0.0.1:4,2@127.0.0.1:5,3@127.0.0.1:6\n",
			"advertised.listeners=PLAINTEXT://127.0.0.1:3\n",
			"default.replication.factor=3\n",
			"transaction.state.log.min.isr=2\n",
		}},
		{"properties override and add", Options{Nodes: 1, Ports: []int{1}, ControllerPorts: []int{2},
			Properties: map[string]string{"num.partitions": "4", "log.retention.hours": "1"}}, 0, []string{
			"num.partitions=4\n",
			"log.retention.hours=1\n",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(tc.o.serverProperties(tc.node, "/data"))
			for _, want := range tc.wants {
				if strings.Count(got, "\n"+want) != 1 {
					t.Errorf("serverProperties(%d) has no single line %q:\n%s", tc.node, want, got)
				}
			}
			if tc.o.Properties != nil && strings.Contains(got, "num.partitions=1\n") {
				t.Errorf("serverProperties(%d) kept the default num.partitions:\n%s", tc.node, got)
			}
		})
	}
}
