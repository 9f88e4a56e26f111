package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/shopledger/shopledger/internal/retry"
	"github.com/shopledger/shopledger/internal/tracing"
)

// ErrConflict is returned when the API refused a transition (HTTP 409): the
// task is not in a state that allows it, e.g. another worker started it.
var ErrConflict = errors.New("pipeline: transition refused")

// ErrNotFound is returned for an unknown file (HTTP 404).
var ErrNotFound = errors.New("pipeline: not found")

// ErrBadRequest is returned when the API rejected the request body (HTTP 400).
var ErrBadRequest = errors.New("pipeline: bad request")

// Client calls the pipeline API. Transport errors and 5xx answers are
// retried with exponential backoff; 4xx answers are not.
type Client struct {
	base    string
	http    *http.Client
	retries int
	backoff time.Duration
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// URL is the API base, e.g. http://127.0.0.1:8082/api/v1/pipeline.
	URL string
	// Timeout bounds each HTTP attempt. Default 5s.
	Timeout time.Duration
	// Retries is how many times a failed attempt is retried. Default 5.
	Retries int
	// Backoff is the first wait between attempts, doubled each time up to 5s.
	// Default 200ms.
	Backoff time.Duration
}

// NewClient returns a client for cfg.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Retries < 0 {
		cfg.Retries = 0
	} else if cfg.Retries == 0 {
		cfg.Retries = 5
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 200 * time.Millisecond
	}
	return &Client{base: cfg.URL, http: &http.Client{Timeout: cfg.Timeout}, retries: cfg.Retries, backoff: cfg.Backoff}
}

// URL is the API base the client calls.
func (c *Client) URL() string { return c.base }

// Register registers filename for shards (POST /files/register) as written
// by producer ("" for an unnamed one). A stem registered by another
// producer returns an error wrapping ErrConflict.
func (c *Client) Register(ctx context.Context, filename string, shards []int, producer string) (RegisterResponse, error) {
	var out RegisterResponse
	err := c.do(ctx, http.MethodPost, "/files/register", RegisterRequest{Filename: filename, Shards: shards, Producer: producer}, &out)
	return out, err
}

// IngestDone marks event-ingest done for every shard of filename.
func (c *Client) IngestDone(ctx context.Context, filename string) (IngestDoneResponse, error) {
	var out IngestDoneResponse
	err := c.do(ctx, http.MethodPost, "/stages/event-ingest/done", FileRequest{Filename: filename}, &out)
	return out, err
}

// Transition applies transition (start, done, fail, retry) to stage of one
// (file, shard) on behalf of owner ("" for none). A refused transition
// returns an error wrapping ErrConflict; a start that owner already made
// succeeds again, so a start whose answer was lost can simply be retried.
func (c *Client) Transition(ctx context.Context, stage Stage, transition Transition, filename string, shard int, owner string) (TaskResponse, error) {
	var out TaskResponse
	err := c.do(ctx, http.MethodPost, "/stages/"+string(stage)+"/"+string(transition), TaskRequest{Filename: filename, Shard: &shard, Owner: owner}, &out)
	return out, err
}

// Queue lists up to limit items ready for stage, oldest first; shard < 0
// means every shard.
func (c *Client) Queue(ctx context.Context, stage Stage, shard, limit int) ([]QueueItem, error) {
	return c.queue(ctx, stage, url.Values{}, shard, limit)
}

// Started lists up to limit items whose stage owner started and has not
// finished, oldest first: what a restarted owner resumes. shard < 0 means
// every shard.
func (c *Client) Started(ctx context.Context, stage Stage, owner string, shard, limit int) ([]QueueItem, error) {
	return c.queue(ctx, stage, url.Values{"started_by": {owner}}, shard, limit)
}

func (c *Client) queue(ctx context.Context, stage Stage, q url.Values, shard, limit int) ([]QueueItem, error) {
	q.Set("limit", strconv.Itoa(limit))
	if shard >= 0 {
		q.Set("shard", strconv.Itoa(shard))
	}
	var out QueueResponse
	err := c.do(ctx, http.MethodGet, "/queues/"+string(stage)+"?"+q.Encode(), nil, &out)
	return out.Items, err
}

// File returns every shard row of filename.
func (c *Client) File(ctx context.Context, filename string) (FileResponse, error) {
	var out FileResponse
	err := c.do(ctx, http.MethodGet, "/files/"+url.PathEscape(filename), nil, &out)
	return out, err
}

// Summary returns the counts of GET /metrics/summary.
func (c *Client) Summary(ctx context.Context) (Summary, error) {
	var out Summary
	err := c.do(ctx, http.MethodGet, "/metrics/summary", nil, &out)
	return out, err
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	wait := retry.New(c.backoff, 5*time.Second)
	var last error
	for attempt := 0; attempt <= c.retries; attempt++ {
		if attempt > 0 && !retry.Sleep(ctx, wait.Next()) {
			return fmt.Errorf("%s %s: %w (last error: %v)", method, path, ctx.Err(), last)
		}
		var again bool
		again, last = c.once(ctx, method, path, payload, out)
		if last == nil || !again {
			return last
		}
	}
	return last
}

func (c *Client) once(ctx context.Context, method, path string, payload []byte, out any) (retry bool, err error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return false, err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	tracing.Inject(ctx, req.Header) // the caller's span: the API keeps it with the rows
	resp, err := c.http.Do(req)
	if err != nil {
		return ctx.Err() == nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return true, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e ErrorBody
		_ = json.Unmarshal(data, &e)
		msg := e.Error
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		switch resp.StatusCode {
		case http.StatusConflict:
			return false, fmt.Errorf("%s %s: %w: %s", method, path, ErrConflict, msg)
		case http.StatusNotFound:
			return false, fmt.Errorf("%s %s: %w: %s", method, path, ErrNotFound, msg)
		case http.StatusBadRequest:
			return false, fmt.Errorf("%s %s: %w: %s", method, path, ErrBadRequest, msg)
		}
		return resp.StatusCode >= 500, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, msg)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return false, fmt.Errorf("%s %s: decode response: %w", method, path, err)
		}
	}
	return false, nil
}
