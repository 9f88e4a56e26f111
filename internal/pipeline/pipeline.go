// Package pipeline is the contract of the pipeline API (SPEC §3): stage and
// status names, request and response bodies, and a client with timeouts and
// retries that every stage uses to register, claim and finish its work.
package pipeline

import (
	"fmt"
	"regexp"
	"time"
)

// Stage names, as they appear in URLs.
const (
	StageEventIngest   = "event-ingest"
	StageShardSplitter = "shard-splitter"
	StageShardWorker   = "shard-worker"
	StageMySQLSender   = "mysql-sender"
)

// Stages lists the stages in pipeline order.
var Stages = []string{StageEventIngest, StageShardSplitter, StageShardWorker, StageMySQLSender}

// Statuses.
const (
	StatusNew     = "new"
	StatusStarted = "started"
	StatusDone    = "done"
	StatusFailed  = "failed"
)

// Statuses lists every status.
var Statuses = []string{StatusNew, StatusStarted, StatusDone, StatusFailed}

// Transitions accepted by POST /stages/{stage}/{transition}.
const (
	TransitionStart = "start"
	TransitionDone  = "done"
	TransitionFail  = "fail"
	TransitionRetry = "retry"
)

var filenameRE = regexp.MustCompile(`^[0-9]{14}$`)

// ValidFilename checks that name is a 14-digit UTC tick stem YYYYMMDDHHMMSS.
func ValidFilename(name string) error {
	if !filenameRE.MatchString(name) {
		return fmt.Errorf("filename %q is not a 14-digit YYYYMMDDHHMMSS stem", name)
	}
	if _, err := time.Parse("20060102150405", name); err != nil {
		return fmt.Errorf("filename %q is not a valid UTC time", name)
	}
	return nil
}

// RegisterRequest is the body of POST /files/register.
type RegisterRequest struct {
	Filename string `json:"filename"`
	Shards   []int  `json:"shards"`
}

// RegisterResponse answers it; Created counts the rows this call created
// (0 when the file was already registered).
type RegisterResponse struct {
	Filename string `json:"filename"`
	Shards   []int  `json:"shards"`
	Created  int    `json:"created"`
}

// FileRequest is the body of POST /stages/event-ingest/done.
type FileRequest struct {
	Filename string `json:"filename"`
}

// IngestDoneResponse answers it.
type IngestDoneResponse struct {
	Filename    string `json:"filename"`
	UpdatedRows int    `json:"updated_rows"`
}

// TaskRequest is the body of POST /stages/{stage}/{transition}. Shard is a
// pointer so that a missing shard is told from shard 0.
type TaskRequest struct {
	Filename string `json:"filename"`
	Shard    *int   `json:"shard"`
}

// TaskResponse answers a transition.
type TaskResponse struct {
	Filename string `json:"filename"`
	Shard    int    `json:"shard"`
	Stage    string `json:"stage"`
	Status   string `json:"status"`
}

// QueueItem is one (file, shard) ready for a stage.
type QueueItem struct {
	Filename  string    `json:"filename"`
	Shard     int       `json:"shard"`
	CreatedAt time.Time `json:"created_at"`
}

// QueueResponse answers GET /queues/{stage}.
type QueueResponse struct {
	Stage string      `json:"stage"`
	Items []QueueItem `json:"items"`
}

// ShardStatus is one shard row of a file.
type ShardStatus struct {
	Shard               int       `json:"shard"`
	EventIngestStatus   string    `json:"event_ingest_status"`
	ShardSplitterStatus string    `json:"shard_splitter_status"`
	ShardWorkerStatus   string    `json:"shard_worker_status"`
	MySQLSenderStatus   string    `json:"mysql_sender_status"`
	UpdatedAt           time.Time `json:"updated_at"`
}

// Status returns the status of stage in this row.
func (s ShardStatus) Status(stage string) string {
	switch stage {
	case StageEventIngest:
		return s.EventIngestStatus
	case StageShardSplitter:
		return s.ShardSplitterStatus
	case StageShardWorker:
		return s.ShardWorkerStatus
	case StageMySQLSender:
		return s.MySQLSenderStatus
	}
	return ""
}

// FileResponse answers GET /files/{filename}.
type FileResponse struct {
	Filename string        `json:"filename"`
	Shards   []ShardStatus `json:"shards"`
}

// StageCounts counts rows per status of one stage.
type StageCounts struct {
	New     int `json:"new"`
	Started int `json:"started"`
	Done    int `json:"done"`
	Failed  int `json:"failed"`
}

// ShardCounts summarises one shard: Done and Failed count rows whose last
// stage (mysql-sender) is done, and rows with any stage failed.
type ShardCounts struct {
	Shard  int `json:"shard"`
	Total  int `json:"total"`
	Done   int `json:"done"`
	Failed int `json:"failed"`
}

// Summary answers GET /metrics/summary.
type Summary struct {
	Total   int                    `json:"total"`
	ByStage map[string]StageCounts `json:"by_stage"`
	ByShard []ShardCounts          `json:"by_shard"`
}

// ErrorBody is every error response's body.
type ErrorBody struct {
	Error string `json:"error"`
}
