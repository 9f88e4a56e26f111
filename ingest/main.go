// Command ingest is the event-ingest stage: it generates coherent events
// into files under <shared>/events on every generation_interval boundary and
// serves GET /health, /ready, /api/v1/events/stats and POST /api/v1/events.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/gorilla/mux"
	"golang.org/x/sync/errgroup"

	"github.com/shopledger/shopledger/ingest/internal/generator"
	"github.com/shopledger/shopledger/internal/cli"
	"github.com/shopledger/shopledger/internal/eventgen"
	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/logging"
	"github.com/shopledger/shopledger/internal/metrics"
	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/spool"
	"github.com/shopledger/shopledger/internal/tracing"
)

func main() {
	os.Exit(cli.App[Config]{
		Name: "ingest",
		About: "the event-ingest stage (SPEC §2): writes a file of generated events into <shared>/events on every " +
			"generation_interval boundary, registered with the pipeline API; serves /health, /ready, /metrics, " +
			"GET /api/v1/events/stats and POST /api/v1/events (events for the next file).",
		Defaults: defaults,
		Commands: []cli.Command[Config]{
			{Name: "run", About: "generate events files and serve the HTTP API", Setup: cli.Run(cli.NoArgs(run))},
		},
		Server: func(c *Config) httpapi.ServerConfig { return c.Server },
	}.Main(os.Args[1:]))
}

func run(ctx context.Context, cfg *Config, _ []string) error {
	log := logging.New(cfg.Logging, "ingest")
	stopTracing, err := tracing.Setup(ctx, cfg.Tracing, "ingest")
	if err != nil {
		return err
	}
	defer stopTracing()
	dir := spool.Dir(cfg.Shared)
	seed := cfg.Generator.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	api := pipeline.NewClient(pipeline.ClientConfig{URL: cfg.Pipeline.URL, Timeout: cfg.Pipeline.Timeout, Retries: cfg.Pipeline.Retries})
	reg := metrics.New("ingest", -1)
	gen, err := generator.New(generator.Config{Spool: dir, Interval: cfg.Events.GenerationInterval,
		EventsPerBatch: cfg.Events.EventsPerBatch, MaxBatchSize: cfg.Events.MaxBatchSize, Shards: cfg.Pipeline.ShardsCount,
		MaxPayloadSize: cfg.Events.MaxPayloadSize, ValidationTimeout: cfg.Events.ValidationTimeout,
		World: eventgen.World{Shops: cfg.Generator.Shops, Goods: cfg.Generator.Goods, Users: cfg.Generator.Users},
		Seed:  seed, MaxFiles: cfg.Events.MaxFiles, Producer: cfg.Pipeline.Producer}, api, log, reg)
	if err != nil {
		return err
	}
	ready := func(context.Context) error {
		f, err := os.CreateTemp(dir.EventsDir(), ".ready-*")
		if err != nil {
			return fmt.Errorf("events folder not writable: %w", err)
		}
		f.Close()
		return os.Remove(f.Name())
	}
	r := routes(gen, reg, ready, log)
	g, ctx := errgroup.WithContext(ctx)
	srvCtx, stopServer := context.WithCancel(ctx)
	g.Go(func() error { defer stopServer(); return gen.Run(ctx) })
	g.Go(func() error { return httpapi.Serve(srvCtx, cfg.Server, r, log) })
	log.Info("started", "interval", cfg.Events.GenerationInterval, "batch", min(cfg.Events.EventsPerBatch, cfg.Events.MaxBatchSize),
		"shards", cfg.Pipeline.ShardsCount, "events_dir", dir.EventsDir())
	return g.Wait()
}

// routes is the ingest API (generator.OpenAPI describes it).
func routes(gen *generator.Generator, reg httpapi.Metrics, ready func(context.Context) error, log *slog.Logger) *mux.Router {
	r := httpapi.Router("ingest", reg, ready, log)
	httpapi.ServeOpenAPI(r, generator.OpenAPI)
	r.HandleFunc("/api/v1/events/stats", gen.StatsHandler).Methods(http.MethodGet)
	r.HandleFunc("/api/v1/events", gen.PostHandler).Methods(http.MethodPost)
	return r
}
