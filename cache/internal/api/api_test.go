package api

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/gorilla/mux"
	"github.com/segmentio/kafka-go"

	"github.com/shopledger/shopledger/cache/internal/store"
	"github.com/shopledger/shopledger/internal/cdc/cdctest"
	"github.com/shopledger/shopledger/internal/consume"
	"github.com/shopledger/shopledger/internal/httpapi/apitest"
	"github.com/shopledger/shopledger/internal/metrics"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/schema"
)

func TestAPI(t *testing.T) {
	inst := stacktest.MariaDB(t)
	stacktest.Database(t, inst, "cache_db", schema.Cache)
	db := stacktest.As(t, inst, "cache", "cache_db")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := store.New(db, log)
	big := int64(9223372036854775807)
	ev := func(pos uint32, shop any, typ int, status string) cdctest.Change {
		return cdctest.Change{Shard: 0, Table: "events", Op: "c", Pos: pos, After: map[string]any{"shop_id": shop, "event_type": typ, "status": status}}
	}
	var msgs []kafka.Message
	for _, c := range []cdctest.Change{
		{Shard: 0, Table: "shop", Op: "c", Pos: 100, After: map[string]any{"id": 4, "good_id": 7, "count": 10, "price": "2.50"}},
		{Shard: 0, Table: "shop", Op: "u", Pos: 200, Before: map[string]any{"id": 4, "good_id": 7, "count": 10, "price": "2.50"},
			After: map[string]any{"id": 4, "good_id": 7, "count": 8, "price": "3.00"}},
		{Shard: 1, Table: "shop", Op: "c", Pos: 100, After: map[string]any{"id": big, "good_id": big, "count": 1, "price": "1.00"}},
		{Shard: 0, Table: "shop_state", Op: "c", Pos: 300, After: map[string]any{"shop_id": 4, "active": 0}},
		ev(400, 4, 1, "applied"), ev(500, 4, 1, "rejected"), ev(600, 4, 3, "pending"), ev(700, 4, 3, "pending"),
		ev(800, 4, 3, "applied"), ev(900, nil, 3, "pending"), ev(1000, 4, 0, "duplicate"),
	} {
		msgs = append(msgs, cdctest.Messages("shop."+c.Table, []cdctest.Change{c})...)
	}
	if _, err := consume.Apply(context.Background(), db, s, consume.Decode(s, msgs), nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHandler(s, log, metrics.New("cache", -1), func(context.Context) error { return nil }))
	defer srv.Close()
	apitest.Run(t, srv.URL, []apitest.Case{
		apitest.GET("/api/v1/shops/4", 200, `"shop_id":4`, `"shard":0`, `"active":false`, `"stock_total":8`, `"goods":[{"good_id":7,"count":8,"price":3.00}]`,
			`"purchase":{"applied":1,"rejected":1}`, `"return":{"applied":1,"pending":2}`, `"events":6`, `"purchases":1`, `"returns":1`,
			`"rejected":1`, `"pending":2`, `"freshness":[{"shard":0,"topic":"shop.events"`),
		apitest.GET("/api/v1/shops/9223372036854775807", 200, `"shop_id":9223372036854775807`, `"active":null`, `"stock_total":1`),
		apitest.GET("/api/v1/shops/5", 404, `"error":"no change of shop 5 has been seen"`),
		apitest.GET("/api/v1/shops/9223372036854775808", 400, `"error":"shop_id must be an integer`),
		apitest.GET("/api/v1/shops/x", 400, `"error"`),
		apitest.GET("/api/v1/shops/4/goods/7", 200, `{"shop_id":4,"good_id":7,"count":8,"price":3.00}`),
		apitest.GET("/api/v1/shops/9223372036854775807/goods/9223372036854775807", 200, `"count":1`),
		apitest.GET("/api/v1/shops/4/goods/8", 404, `"error":"shop 4 has no good 8"`),
		apitest.GET("/api/v1/shops/4/goods/-8", 400, `"error":"good_id must be an integer`),
		apitest.GET("/api/v1/shops/4/goods/99999999999999999999", 400, `"error"`),
		apitest.GET("/api/v1/pending", 200, `"total":3`, `{"shop_id":null,"shard":0,"pending":1}`, `{"shop_id":4,"shard":0,"pending":2}`),
		apitest.GET("/api/v1/counters", 200, `"total":{"by_type":`, `"events":7`, `"pending":3`, `"shards":[{"shard":0,`),
		apitest.GET("/health", 200, `"status":"ok"`),
	})
}

// TestOpenAPI: openapi.json describes exactly the routes served, and is
// served at /openapi.json.
func TestOpenAPI(t *testing.T) {
	h := NewHandler(store.New(nil, slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler), metrics.New("cache", -1),
		func(context.Context) error { return nil })
	apitest.CheckOpenAPI(t, h.(*mux.Router), OpenAPI)
	srv := httptest.NewServer(h)
	defer srv.Close()
	apitest.Run(t, srv.URL, []apitest.Case{apitest.GET("/openapi.json", 200, `"openapi":"3.0.3"`)})
}
