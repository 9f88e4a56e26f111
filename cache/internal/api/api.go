// Package api serves the cache REST API on gorilla/mux.
package api

import (
	"context"
	_ "embed"
	"errors"
	"log/slog"
	"net/http"

	"github.com/shopledger/shopledger/cache/internal/store"
	"github.com/shopledger/shopledger/internal/httpapi"
)

// OpenAPI is the API's OpenAPI 3 description, served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

type api struct {
	store *store.Store
	log   *slog.Logger
}

// NewHandler returns the whole HTTP surface: shops, goods, pending and
// counters under /api/v1, plus /health, /ready (ready) and /metrics (reg).
func NewHandler(s *store.Store, log *slog.Logger, reg httpapi.Metrics, ready func(context.Context) error) http.Handler {
	a := &api{store: s, log: log}
	r := httpapi.Router("cache", reg, ready, log)
	httpapi.ServeOpenAPI(r, OpenAPI)
	r.HandleFunc("/api/v1/shops/{shop_id}", a.shop).Methods(http.MethodGet)
	r.HandleFunc("/api/v1/shops/{shop_id}/goods/{good_id}", a.good).Methods(http.MethodGet)
	r.HandleFunc("/api/v1/pending", a.pending).Methods(http.MethodGet)
	r.HandleFunc("/api/v1/counters", a.counters).Methods(http.MethodGet)
	return r
}

func (a *api) shop(w http.ResponseWriter, r *http.Request) {
	id, err := httpapi.PathID(r, "shop_id")
	if err != nil {
		httpapi.Error(w, http.StatusBadRequest, "%v", err)
		return
	}
	sh, err := a.store.Shop(r.Context(), id)
	a.answer(w, r, sh, err, "no change of shop %d has been seen", id)
}

func (a *api) good(w http.ResponseWriter, r *http.Request) {
	shop, err := httpapi.PathID(r, "shop_id")
	if err != nil {
		httpapi.Error(w, http.StatusBadRequest, "%v", err)
		return
	}
	good, err := httpapi.PathID(r, "good_id")
	if err != nil {
		httpapi.Error(w, http.StatusBadRequest, "%v", err)
		return
	}
	g, err := a.store.Good(r.Context(), shop, good)
	a.answer(w, r, g, err, "shop %d has no good %d", shop, good)
}

func (a *api) pending(w http.ResponseWriter, r *http.Request) {
	p, err := a.store.Pending(r.Context())
	a.answer(w, r, p, err, "")
}

func (a *api) counters(w http.ResponseWriter, r *http.Request) {
	c, err := a.store.Counters(r.Context())
	a.answer(w, r, c, err, "")
}

// answer writes v, or the 404 described by notFound, or a 503.
func (a *api) answer(w http.ResponseWriter, r *http.Request, v any, err error, notFound string, args ...any) {
	a.log.DebugContext(r.Context(), "cache_db answered", "path", r.URL.Path, "err", err)
	switch {
	case err == nil:
		httpapi.WriteJSON(w, http.StatusOK, v)
	case errors.Is(err, store.ErrNotFound):
		httpapi.Error(w, http.StatusNotFound, notFound, args...)
	default:
		a.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		httpapi.Error(w, http.StatusServiceUnavailable, "cache_db unavailable")
	}
}
