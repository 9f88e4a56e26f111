package main

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/shopledger/shopledger/ingest/internal/generator"
	"github.com/shopledger/shopledger/internal/httpapi/apitest"
	"github.com/shopledger/shopledger/internal/metrics"
	"github.com/shopledger/shopledger/internal/spool"
)

// TestOpenAPI: the ingest API's openapi.json describes exactly the routes
// served, and is served at /openapi.json.
func TestOpenAPI(t *testing.T) {
	reg := metrics.New("ingest", -1)
	gen, err := generator.New(generator.Config{Spool: spool.Dir(t.TempDir()), EventsPerBatch: 10, MaxBatchSize: 10, Shards: 2}, nil,
		slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	r := routes(gen, reg, func(context.Context) error { return nil }, slog.New(slog.DiscardHandler))
	apitest.CheckOpenAPI(t, r, generator.OpenAPI)
	srv := httptest.NewServer(r)
	defer srv.Close()
	apitest.Run(t, srv.URL, []apitest.Case{apitest.GET("/openapi.json", 200, `"openapi":"3.0.3"`, `"/api/v1/events"`)})
}
