package tracking

import (
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/internal/httpapi"
	"github.com/shopledger/shopledger/internal/pipeline"
	"github.com/shopledger/shopledger/internal/tracing"
)

// OpenAPI is the API's OpenAPI 3 description, served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// BasePath is where the API lives.
const BasePath = "/api/v1/pipeline"

// MaxShards bounds shard numbers accepted by register, to catch garbage early.
const MaxShards = 1024

// API serves SPEC §3 over a Store.
type API struct {
	store       *Store
	log         *slog.Logger
	transitions *prometheus.CounterVec
}

// NewHandler returns the whole HTTP surface: the API under BasePath plus
// /health, /ready and /metrics.
func NewHandler(store *Store, log *slog.Logger, reg httpapi.Metrics) http.Handler {
	a := &API{store: store, log: log, transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "shopledger", Subsystem: "pipeline", Name: "transitions_total",
		Help: "Stage transitions asked for, by stage, transition and result (ok, refused, not_found, error); " +
			"rate() of done is each stage's throughput in (file, shard) tasks.",
	}, []string{"stage", "transition", "result"})}
	reg.MustRegister(a.transitions, newBacklog(store))
	r := httpapi.Router("pipelineapi", reg, store.Ping, log)
	httpapi.ServeOpenAPI(r, OpenAPI)
	// Full paths rather than a subrouter: gorilla/mux answers 404 instead of
	// 405 for a wrong method on a subrouter's route.
	r.HandleFunc(BasePath+"/files/register", a.register).Methods(http.MethodPost)
	r.HandleFunc(BasePath+"/files/{filename}", a.file).Methods(http.MethodGet)
	r.HandleFunc(BasePath+"/stages/event-ingest/done", a.ingestDone).Methods(http.MethodPost)
	r.HandleFunc(BasePath+"/stages/{stage}/{transition}", a.transition).Methods(http.MethodPost)
	r.HandleFunc(BasePath+"/queues/{stage}", a.queue).Methods(http.MethodGet)
	r.HandleFunc(BasePath+"/metrics/summary", a.summary).Methods(http.MethodGet)
	return r
}

// registerBody is a pipeline.RegisterRequest as sent: a null shard is
// told from shard 0.
type registerBody struct {
	Filename string `json:"filename"`
	Shards   []*int `json:"shards"`
	Producer string `json:"producer"`
}

func (a *API) register(w http.ResponseWriter, r *http.Request) {
	var body registerBody
	if err := httpapi.DecodeBody(r, &body); err != nil {
		httpapi.Error(w, http.StatusBadRequest, "%v", err)
		return
	}
	req := pipeline.RegisterRequest{Filename: body.Filename, Producer: body.Producer}
	for i, s := range body.Shards {
		if s == nil {
			httpapi.Error(w, http.StatusBadRequest, "shards[%d] is null", i)
			return
		}
		req.Shards = append(req.Shards, *s)
	}
	if err := pipeline.ValidFilename(req.Filename); err != nil {
		httpapi.Error(w, http.StatusBadRequest, "%v", err)
		return
	}
	if len(req.Shards) == 0 {
		httpapi.Error(w, http.StatusBadRequest, "shards must list at least one shard")
		return
	}
	seen := map[int]bool{}
	for _, s := range req.Shards {
		if s < 0 || s >= MaxShards {
			httpapi.Error(w, http.StatusBadRequest, "shard %d out of range 0..%d", s, MaxShards-1)
			return
		}
		if seen[s] {
			httpapi.Error(w, http.StatusBadRequest, "shard %d listed twice", s)
			return
		}
		seen[s] = true
	}
	if len(req.Producer) > 128 {
		httpapi.Error(w, http.StatusBadRequest, "producer longer than 128 bytes")
		return
	}
	n, err := a.store.Register(r.Context(), req.Filename, req.Shards, req.Producer, tracing.FromHeader(r.Header))
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, pipeline.RegisterResponse{Filename: req.Filename, Shards: req.Shards, Created: n})
}

func (a *API) ingestDone(w http.ResponseWriter, r *http.Request) {
	var req pipeline.FileRequest
	if err := httpapi.DecodeBody(r, &req); err != nil {
		httpapi.Error(w, http.StatusBadRequest, "%v", err)
		return
	}
	if err := pipeline.ValidFilename(req.Filename); err != nil {
		httpapi.Error(w, http.StatusBadRequest, "%v", err)
		return
	}
	n, err := a.store.IngestDone(r.Context(), req.Filename, tracing.FromHeader(r.Header))
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, pipeline.IngestDoneResponse{Filename: req.Filename, UpdatedRows: n})
}

// taskStage reads the {stage} path variable: one of pipeline.TaskStages.
func taskStage(r *http.Request) (pipeline.Stage, error) {
	stage := pipeline.Stage(mux.Vars(r)["stage"])
	if !slices.Contains(pipeline.TaskStages, stage) {
		names := make([]string, len(pipeline.TaskStages))
		for i, s := range pipeline.TaskStages {
			names[i] = string(s)
		}
		return "", fmt.Errorf("unknown stage %q: want one of %s", stage, strings.Join(names, ", "))
	}
	return stage, nil
}

func (a *API) transition(w http.ResponseWriter, r *http.Request) {
	stage, err := taskStage(r)
	if err != nil {
		httpapi.Error(w, http.StatusBadRequest, "%v", err)
		return
	}
	transition := pipeline.Transition(mux.Vars(r)["transition"])
	if _, ok := rules[transition]; !ok {
		httpapi.Error(w, http.StatusBadRequest, "unknown transition %q: want start, done, fail or retry", transition)
		return
	}
	var req pipeline.TaskRequest
	if err := httpapi.DecodeBody(r, &req); err != nil {
		httpapi.Error(w, http.StatusBadRequest, "%v", err)
		return
	}
	if err := pipeline.ValidFilename(req.Filename); err != nil {
		httpapi.Error(w, http.StatusBadRequest, "%v", err)
		return
	}
	if req.Shard == nil {
		httpapi.Error(w, http.StatusBadRequest, "missing shard")
		return
	}
	if *req.Shard < 0 {
		httpapi.Error(w, http.StatusBadRequest, "shard must not be negative, got %d", *req.Shard)
		return
	}
	if len(req.Owner) > 128 {
		httpapi.Error(w, http.StatusBadRequest, "owner longer than 128 bytes")
		return
	}
	status, err := a.store.Transition(r.Context(), req.Filename, *req.Shard, stage, transition, req.Owner, tracing.FromHeader(r.Header))
	result := "ok"
	switch {
	case errors.Is(err, ErrIllegal):
		result = "refused"
	case errors.Is(err, ErrNotFound):
		result = "not_found"
	case err != nil:
		result = "error"
	}
	a.transitions.WithLabelValues(string(stage), string(transition), result).Inc()
	a.log.DebugContext(r.Context(), "transition", "stage", stage, "transition", transition, "file", req.Filename, "shard", *req.Shard,
		"owner", req.Owner, "status", status, "result", result, "err", err)
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, pipeline.TaskResponse{Filename: req.Filename, Shard: *req.Shard, Stage: stage, Status: status, Owner: req.Owner})
}

func (a *API) queue(w http.ResponseWriter, r *http.Request) {
	stage, err := taskStage(r)
	if err != nil {
		httpapi.Error(w, http.StatusBadRequest, "%v", err)
		return
	}
	q := r.URL.Query()
	limit, err := intParam(q, "limit", 100, 1, 10000)
	if err != nil {
		httpapi.Error(w, http.StatusBadRequest, "limit: %v", err)
		return
	}
	offset, err := intParam(q, "offset", 0, 0, 1<<31-1)
	if err != nil {
		httpapi.Error(w, http.StatusBadRequest, "offset: %v", err)
		return
	}
	shard, err := intParam(q, "shard", -1, 0, MaxShards-1)
	if err != nil {
		httpapi.Error(w, http.StatusBadRequest, "shard: %v", err)
		return
	}
	items, err := a.store.Queue(r.Context(), stage, shard, q.Get("started_by"), limit, offset)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, pipeline.QueueResponse{Stage: stage, Items: items})
}

func (a *API) file(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["filename"]
	if name == "register" { // /files/register, which takes POST only
		w.Header().Set("Allow", http.MethodPost)
		httpapi.Error(w, http.StatusMethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path)
		return
	}
	if err := pipeline.ValidFilename(name); err != nil {
		httpapi.Error(w, http.StatusBadRequest, "%v", err)
		return
	}
	f, err := a.store.File(r.Context(), name)
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, f)
}

func (a *API) summary(w http.ResponseWriter, r *http.Request) {
	s, err := a.store.Summary(r.Context())
	if err != nil {
		a.internal(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, s)
}

func (a *API) storeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		httpapi.Error(w, http.StatusNotFound, "%v", err)
	case errors.Is(err, ErrIllegal):
		httpapi.Error(w, http.StatusConflict, "%v", err)
	default:
		a.internal(w, r, err)
	}
}

func (a *API) internal(w http.ResponseWriter, r *http.Request, err error) {
	a.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	httpapi.Error(w, http.StatusInternalServerError, "internal error")
}

// intParam parses an optional integer query parameter within [lo, hi]; def
// when absent (present but empty is an error).
func intParam(q url.Values, name string, def, lo, hi int) (int, error) {
	if !q.Has(name) {
		return def, nil
	}
	s := q.Get(name)
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, errors.New("not an integer: " + strconv.Quote(s))
	}
	if v < lo || v > hi {
		return 0, errors.New("out of range " + strconv.Itoa(lo) + ".." + strconv.Itoa(hi))
	}
	return v, nil
}
