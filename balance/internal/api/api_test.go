package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gorilla/mux"

	"github.com/shopledger/shopledger/balance/internal/store"
	"github.com/shopledger/shopledger/internal/cdc/cdctest"
	"github.com/shopledger/shopledger/internal/consume"
	"github.com/shopledger/shopledger/internal/httpapi/apitest"
	"github.com/shopledger/shopledger/internal/metrics"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/schema"
)

func TestAPI(t *testing.T) {
	inst := stacktest.MariaDB(t)
	stacktest.Database(t, inst, "balance_db", schema.Balance)
	db := stacktest.As(t, inst, "balance", "balance_db")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := store.New(db, log)
	tx := func(shard int, pos uint32, id, user int64, amount, typ string) cdctest.Change {
		return cdctest.Change{Shard: shard, Table: "account_transaction", Op: "c", Pos: pos,
			After: map[string]any{"id": id, "user_id": user, "amount": amount, "type": typ}}
	}
	big := int64(9223372036854775807)
	msgs := cdctest.Messages("shop.account_transaction", []cdctest.Change{
		tx(0, 100, 1, 3, "100.00", "credit"), tx(1, 200, 1, 3, "50.00", "credit"), tx(1, 300, 2, 3, "20.25", "debit"),
		tx(0, 400, 2, 4, "5.00", "credit"), tx(0, 500, 3, big, "1.00", "credit"),
	})
	if _, err := consume.Apply(context.Background(), db, s, consume.Decode(s, msgs), nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHandler(s, log, metrics.New("balance", -1), func(context.Context) error { return nil }))
	defer srv.Close()

	apitest.Run(t, srv.URL, []apitest.Case{
		apitest.GET("/api/v1/balances/3", 200, `"user_id":3`, `"balance":129.75`, `"credits":150.00`, `"debits":20.25`, `"tx_count":3`,
			`{"shard":0,"balance":100.00`, `{"shard":1,"balance":29.75`, `"freshness":[{"shard":0,"file":"binlog.000001"`),
		apitest.GET("/api/v1/balances/9223372036854775807", 200, `"user_id":9223372036854775807`, `"balance":1.00`),
		apitest.GET("/api/v1/balances/5", 404, `"error":"no transaction of user 5 has been applied"`),
		apitest.GET("/api/v1/balances/9223372036854775808", 400, `"error":"user_id must be an integer`),
		apitest.GET("/api/v1/balances/-1", 400, `"error"`),
		apitest.GET("/api/v1/balances/abc", 400, `"error"`),
		apitest.GET("/api/v1/balances", 200, `"total":3`, `"sort":"user_id"`, `"balances":[{"user_id":3,`),
		apitest.GET("/api/v1/balances?sort=-balance&limit=1", 200, `"limit":1`, `"balances":[{"user_id":3,`),
		apitest.GET("/api/v1/balances?sort=balance&limit=2&offset=1", 200, `"offset":1`, `"balances":[{"user_id":4,"balance":5.00`),
		apitest.GET("/api/v1/balances?offset=10", 200, `"balances":[]`),
		apitest.GET("/api/v1/balances?sort=name", 400, `"error":"sort must be one of`),
		// Found by schemathesis: a parameter given empty was taken as absent.
		apitest.GET("/api/v1/balances?sort=", 400, `"error":"sort must be one of`),
		apitest.GET("/api/v1/balances?limit=", 400, `"error":"limit must be an integer from 1 to 1000`),
		apitest.GET("/api/v1/balances?limit=0", 400, `"error":"limit must be an integer from 1 to 1000`),
		apitest.GET("/api/v1/balances?limit=100000", 400, `"error"`),
		apitest.GET("/api/v1/balances?offset=-1", 400, `"error"`),
		apitest.GET("/api/v1/nothing", 404, `"error"`),
		apitest.GET("/health", 200, `"status":"ok"`),
		apitest.GET("/ready", 200, `"status":"ready"`),
	})
	resp, err := http.Post(srv.URL+"/api/v1/balances/3", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
}

// TestOpenAPI: openapi.json describes exactly the routes served, and is
// served at /openapi.json.
func TestOpenAPI(t *testing.T) {
	h := NewHandler(store.New(nil, slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler), metrics.New("balance", -1),
		func(context.Context) error { return nil })
	apitest.CheckOpenAPI(t, h.(*mux.Router), OpenAPI)
	srv := httptest.NewServer(h)
	defer srv.Close()
	apitest.Run(t, srv.URL, []apitest.Case{apitest.GET("/openapi.json", 200, `"openapi":"3.0.3"`)})
}
