package freeport

import (
	"net"
	"strconv"
	"testing"
)

// Pick gives distinct ports below the ephemeral range that can be bound.
func TestPick(t *testing.T) {
	ports, err := Pick(20)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p < low || p >= ephemeral() {
			t.Errorf("port %d outside [%d, %d)", p, low, ephemeral())
		}
		if seen[p] {
			t.Errorf("port %d picked twice", p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Errorf("port %d: %v", p, err)
			continue
		}
		l.Close()
	}
	if len(ports) != 20 {
		t.Errorf("%d ports, want 20", len(ports))
	}
}
