// Package api serves the balance REST API on gorilla/mux.
package api

import (
	"context"
	_ "embed"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/shopledger/shopledger/balance/internal/store"
	"github.com/shopledger/shopledger/internal/httpapi"
)

// OpenAPI is the API's OpenAPI 3 description, served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// MaxLimit bounds a page of balances.
const MaxLimit = 1000

type api struct {
	store *store.Store
	log   *slog.Logger
}

// NewHandler returns the whole HTTP surface: the balances under
// /api/v1/balances plus /health, /ready (ready) and /metrics (reg).
func NewHandler(s *store.Store, log *slog.Logger, reg httpapi.Metrics, ready func(context.Context) error) http.Handler {
	a := &api{store: s, log: log}
	r := httpapi.Router("balance", reg, ready, log)
	httpapi.ServeOpenAPI(r, OpenAPI)
	r.HandleFunc("/api/v1/balances", a.list).Methods(http.MethodGet)
	r.HandleFunc("/api/v1/balances/{user_id}", a.user).Methods(http.MethodGet)
	return r
}

func (a *api) user(w http.ResponseWriter, r *http.Request) {
	id, err := httpapi.PathID(r, "user_id")
	if err != nil {
		httpapi.Error(w, http.StatusBadRequest, "%v", err)
		return
	}
	u, err := a.store.User(r.Context(), id)
	a.log.DebugContext(r.Context(), "balance_db answered", "user_id", id, "err", err)
	if errors.Is(err, store.ErrNotFound) {
		httpapi.Error(w, http.StatusNotFound, "no transaction of user %d has been applied", id)
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, u)
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	limit, err := httpapi.QueryInt(r, "limit", 50, 1, MaxLimit)
	if err != nil {
		httpapi.Error(w, http.StatusBadRequest, "%v", err)
		return
	}
	offset, err := httpapi.QueryInt(r, "offset", 0, 0, 1<<31-1)
	if err != nil {
		httpapi.Error(w, http.StatusBadRequest, "%v", err)
		return
	}
	sort := "user_id"
	if q := r.URL.Query(); q.Has("sort") {
		sort = q.Get("sort") // present but empty is refused below
	}
	if _, ok := store.Sorts[strings.TrimPrefix(sort, "-")]; !ok {
		httpapi.Error(w, http.StatusBadRequest, "sort must be one of user_id, balance, credits, debits, tx_count, optionally prefixed with - for descending; got %q", sort)
		return
	}
	p, err := a.store.List(r.Context(), limit, offset, sort)
	a.log.DebugContext(r.Context(), "balance_db answered", "limit", limit, "offset", offset, "sort", sort, "err", err)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, p)
}

func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	a.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	httpapi.Error(w, http.StatusServiceUnavailable, "balance_db unavailable")
}
