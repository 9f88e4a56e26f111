// Package freeport picks TCP ports for the servers that tests and tools
// start on 127.0.0.1 and may kill and start again on the same port.
//
// A port the kernel hands out for ":0" comes from its ephemeral range, the
// same range it takes the local end of every outgoing connection from: once
// a server on such a port is killed, any process's next connection may get
// it, and the server cannot come back (a broker restarted in
// TestBrokerKilled found its controller port taken that way). The ports
// here come from below that range, which outgoing connections never use.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// low is the lowest port handed out: above the registered services most
// machines run.
const low = 10000

// ephemeralStart is where the ephemeral range starts when the kernel does
// not say (Linux says in /proc/sys/net/ipv4/ip_local_port_range): IANA's
// dynamic range, which other systems use.
const ephemeralStart = 49152

// rangeFile holds Linux's ephemeral range, "low high".
const rangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

// Pick returns n distinct TCP ports free on 127.0.0.1 and below the
// ephemeral range, holding each open until all are picked so none comes
// back twice. Another process may still bind one before its caller does:
// callers that can, retry on a port taken.
func Pick(n int) ([]int, error) {
	high := ephemeral()
	if high-low < 1000 {
		return nil, fmt.Errorf("free port: the ephemeral range starts at %d, leaving too few ports above %d", high, low)
	}
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			return nil, fmt.Errorf("free port: no free port between %d and %d after %d tries", low, high, tries)
		}
		p := low + rand.IntN(high-low)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // taken, or picked already
		}
		defer l.Close()
		ports = append(ports, p)
	}
	return ports, nil
}

// ephemeral returns where the kernel's ephemeral port range starts.
func ephemeral() int {
	b, err := os.ReadFile(rangeFile)
	if err != nil {
		return ephemeralStart
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return ephemeralStart
	}
	start, err := strconv.Atoi(f[0])
	if err != nil {
		return ephemeralStart
	}
	return start
}
