package e2e

import (
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TestTraceFollowsAFile runs the product with tracing on (TRACING_ENDPOINT
// on an OTLP/HTTP receiver of the test) and follows one events file: the
// ingest span is the root; the splitter's span of the file is its child,
// each worker's shard-worker span the splitter's child, its mysql-sender
// span the shard-worker's child; the cdc-producer's span of a sender
// transaction is the child of the sender's batch span (the trace context
// went through the binlog in a SQL comment), and balance's and cache's
// apply spans are children of that (through the Kafka traceparent header)
// linked to their batch spans. The pipeline API's request spans continue
// their callers'.
func TestTraceFollowsAFile(t *testing.T) {
	rec := startOTLPReceiver(t)
	s := startStack(t, 2, []string{"ingest", "cdc"}, "EVENTS_EVENTS_PER_BATCH=100", "EVENTS_GENERATION_INTERVAL=1s",
		"TRACING_ENDPOINT="+rec.url)
	_ = s
	deadline := time.Now().Add(2 * time.Minute)
	for {
		problems := rec.followFile()
		if len(problems) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no file traced from ingest to balance and cache after 2 minutes (%d spans received):\n%s",
				rec.count(), strings.Join(problems, "\n"))
		}
		time.Sleep(2 * time.Second)
	}
}

// span is a span the receiver got.
type span struct {
	service, name     string
	trace, id, parent string
	links             []string // span ids
	attrs             map[string]string
}

type otlpReceiver struct {
	url   string
	mu    sync.Mutex
	spans []span
}

// startOTLPReceiver serves OTLP/HTTP (protobuf) /v1/traces on a free port
// and keeps every span it receives.
func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{url: "http://" + ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var msg collectorpb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &msg)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.add(&msg)
		out, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *otlpReceiver) add(msg *collectorpb.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range msg.GetResourceSpans() {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s := span{service: service, name: sp.GetName(), trace: hex.EncodeToString(sp.GetTraceId()), id: hex.EncodeToString(sp.GetSpanId()),
					parent: hex.EncodeToString(sp.GetParentSpanId()), attrs: map[string]string{}}
				for _, l := range sp.GetLinks() {
					s.links = append(s.links, hex.EncodeToString(l.GetSpanId()))
				}
				for _, a := range sp.GetAttributes() {
					v := a.GetValue()
					s.attrs[a.GetKey()] = v.GetStringValue()
					if v.GetStringValue() == "" {
						s.attrs[a.GetKey()] = fmt.Sprint(v.GetIntValue())
					}
				}
				r.spans = append(r.spans, s)
			}
		}
	}
}

func (r *otlpReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.spans)
}

// followFile looks for one file whose trace goes from ingest to both
// consumers as the test's doc says, and returns what it misses (nothing
// when some file's trace is whole).
func (r *otlpReceiver) followFile() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	children := map[string][]span{}
	byID := map[string]span{}
	for _, s := range r.spans {
		children[s.parent] = append(children[s.parent], s)
		byID[s.id] = s
	}
	child := func(parent span, service, name string) (span, bool) {
		for _, c := range children[parent.id] {
			if c.service == service && c.name == name && c.trace == parent.trace {
				return c, true
			}
		}
		return span{}, false
	}
	var best []string
	for _, root := range r.spans {
		if root.service != "ingest" || root.name != "event-ingest" || root.parent != "" {
			continue
		}
		file := root.attrs["shopledger.file"]
		var missing []string
		miss := func(what string) { missing = append(missing, fmt.Sprintf("file %s: %s", file, what)) }
		if _, ok := child(root, "pipelineapi", "POST /api/v1/pipeline/files/register"); !ok {
			miss("no pipelineapi register span under the ingest span")
		}
		split, ok := child(root, "shard-splitter", "shard-splitter")
		if !ok {
			miss("no shard-splitter span under the ingest span")
		}
		whole := false
		for shard := range 2 {
			worker, ok := child(split, "shard-worker", "shard-worker")
			for _, c := range children[split.id] {
				if c.service == "shard-worker" && c.name == "shard-worker" && c.attrs["shopledger.shard"] == fmt.Sprint(shard) {
					worker, ok = c, true
				}
			}
			if !ok {
				miss(fmt.Sprintf("no shard-worker span of shard %d under the splitter span", shard))
				continue
			}
			sender, ok := child(worker, "shard-worker", "mysql-sender")
			if !ok {
				miss(fmt.Sprintf("no mysql-sender span of shard %d under its shard-worker span", shard))
				continue
			}
			batch, ok := child(sender, "shard-worker", "mysql-sender batch")
			if !ok {
				miss(fmt.Sprintf("no mysql-sender batch span of shard %d", shard))
				continue
			}
			cdc, ok := child(batch, "cdc-producer", "cdc transaction")
			if !ok {
				miss(fmt.Sprintf("no cdc transaction span under shard %d's sender batch (trace context through the binlog)", shard))
				continue
			}
			consumers := 0
			for _, group := range []string{"balance", "cache"} {
				apply, ok := child(cdc, group, group+" apply")
				if !ok {
					miss(fmt.Sprintf("no %s apply span under shard %d's cdc transaction (trace context through Kafka)", group, shard))
					continue
				}
				if len(apply.links) != 1 || byID[apply.links[0]].name != group+" batch" {
					miss(fmt.Sprintf("%s apply span not linked to its batch span: links %v", group, apply.links))
					continue
				}
				consumers++
			}
			if consumers == 2 {
				whole = true
			}
		}
		if whole && len(missing) == 0 {
			return nil
		}
		if whole || best == nil {
			best = missing
		}
	}
	if best == nil {
		return []string{"no ingest span yet"}
	}
	return best
}
