// Package metrics is the Prometheus plumbing every component shares: one
// registry per process whose metrics all carry the process's constant
// labels (component, and shard for the processes of one shard), with the
// Go and process collectors and shopledger_build_info. Every metric the
// product defines is named shopledger_<subsystem>_<name>_<unit>.
package metrics

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/shopledger/shopledger/internal/cli"
)

// Namespace prefixes every metric the product defines.
const Namespace = "shopledger"

// Registry is one process's metrics. Registering through it (it is a
// prometheus.Registerer) adds the constant labels; Gather and Handler
// serve everything registered.
type Registry struct {
	prometheus.Registerer
	gatherer *prometheus.Registry
}

// New returns the registry of component; shard >= 0 adds the shard label.
func New(component string, shard int) *Registry {
	g := prometheus.NewRegistry()
	labels := prometheus.Labels{"component": component}
	if shard >= 0 {
		labels["shard"] = strconv.Itoa(shard)
	}
	r := &Registry{Registerer: prometheus.WrapRegistererWith(labels, g), gatherer: g}
	version, commit := cli.Build()
	info := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "build_info",
		Help:        "Always 1; its labels name the version and commit of the running binary.",
		ConstLabels: prometheus.Labels{"version": version, "commit": commit}})
	info.Set(1)
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), info)
	return r
}

// Gather gathers every metric registered.
func (r *Registry) Gather() ([]*dto.MetricFamily, error) { return r.gatherer.Gather() }

// Handler serves the metrics in Prometheus' exposition formats. A
// collector that fails (a database away) leaves its metrics out rather
// than failing the whole scrape.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
