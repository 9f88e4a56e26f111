// Package pipeline is the contract of the pipeline API (SPEC §3): stage and
// status names, request and response bodies, and a client with timeouts and
// retries that every stage uses to register, claim and finish its work.
package pipeline

import (
	"fmt"
	"regexp"
	"time"
)

// Stage is a pipeline stage, named as in URLs.
type Stage string

// The stages.
const (
	StageEventIngest   Stage = "event-ingest"
	StageShardSplitter Stage = "shard-splitter"
	StageShardWorker   Stage = "shard-worker"
	StageMySQLSender   Stage = "mysql-sender"
)

// Stages lists the stages in pipeline order.
var Stages = []Stage{StageEventIngest, StageShardSplitter, StageShardWorker, StageMySQLSender}

// TaskStages are the stages claimed per (file, shard) with start.
var TaskStages = []Stage{StageShardSplitter, StageShardWorker, StageMySQLSender}

// Status is a stage's status on one (file, shard) row.
type Status string

// The statuses.
const (
	StatusNew     Status = "new"
	StatusStarted Status = "started"
	StatusDone    Status = "done"
	StatusFailed  Status = "failed"
)

// Statuses lists every status.
var Statuses = []Status{StatusNew, StatusStarted, StatusDone, StatusFailed}

// Transition is what POST /stages/{stage}/{transition} asks for.
type Transition string

// The transitions.
const (
	TransitionStart Transition = "start"
	TransitionDone  Transition = "done"
	TransitionFail  Transition = "fail"
	TransitionRetry Transition = "retry"
)

// ReleaseProducer is the producer of the splitter's release files: files
// it registers itself, without an events file, to carry returns it held
// for their purchase when no producer's file comes to carry them.
const ReleaseProducer = "shard-splitter"

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

// RegisterRequest is the body of POST /files/register. Producer names the
// writer of the file (an extension): a register of an existing stem by
// another producer is refused, since two writers of one second would
// otherwise overwrite each other's file.
type RegisterRequest struct {
	Filename string `json:"filename"`
	Shards   []int  `json:"shards"`
	Producer string `json:"producer,omitempty"`
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
// pointer so that a missing shard is told from shard 0. Owner (an
// extension) names the claimant: its start is idempotent (a retry after a
// lost answer succeeds), and another owner's done or fail is refused.
type TaskRequest struct {
	Filename string `json:"filename"`
	Shard    *int   `json:"shard"`
	Owner    string `json:"owner,omitempty"`
}

// TaskResponse answers a transition.
type TaskResponse struct {
	Filename string `json:"filename"`
	Shard    int    `json:"shard"`
	Stage    Stage  `json:"stage"`
	Status   Status `json:"status"`
	Owner    string `json:"owner,omitempty"`
}

// QueueItem is one (file, shard) ready for a stage. TraceParent (an
// extension) is the trace the stage continues: the W3C traceparent of the
// stage that handed the row on, when it traced.
type QueueItem struct {
	Filename    string    `json:"filename"`
	Shard       int       `json:"shard"`
	CreatedAt   time.Time `json:"created_at"`
	TraceParent string    `json:"traceparent,omitempty"`
}

// QueueResponse answers GET /queues/{stage}.
type QueueResponse struct {
	Stage Stage       `json:"stage"`
	Items []QueueItem `json:"items"`
}

// ShardStatus is one shard row of a file. Owner and StartedAt (extensions)
// say who started its current stage and when, TraceParent the trace its
// next stage continues.
type ShardStatus struct {
	Shard               int        `json:"shard"`
	EventIngestStatus   Status     `json:"event_ingest_status"`
	ShardSplitterStatus Status     `json:"shard_splitter_status"`
	ShardWorkerStatus   Status     `json:"shard_worker_status"`
	MySQLSenderStatus   Status     `json:"mysql_sender_status"`
	UpdatedAt           time.Time  `json:"updated_at"`
	Owner               string     `json:"owner,omitempty"`
	StartedAt           *time.Time `json:"started_at,omitempty"`
	TraceParent         string     `json:"traceparent,omitempty"`
}

// Status returns the status of stage in this row.
func (s ShardStatus) Status(stage Stage) Status {
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

// FileResponse answers GET /files/{filename}. Producer (an extension) is
// the writer that registered it.
type FileResponse struct {
	Filename string        `json:"filename"`
	Producer string        `json:"producer,omitempty"`
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
	Total   int                   `json:"total"`
	ByStage map[Stage]StageCounts `json:"by_stage"`
	ByShard []ShardCounts         `json:"by_shard"`
}

// ErrorBody is every error response's body.
type ErrorBody struct {
	Error string `json:"error"`
}
