// Package cdc is the contract between the cdc-producer and the consumers of
// its topics (SPEC §5): the Debezium change-event envelope, its source block,
// and the order of source positions within one shard.
package cdc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Source is the envelope's source block: Debezium's MySQL/MariaDB fields
// plus our shard and epoch. Within one shard, (epoch, file, pos, row) orders the
// changes: positions are comparable within an epoch, and the producer
// starts a new epoch whenever positions stop being comparable with the
// earlier ones or the state must be rebuilt (a snapshot, a re-anchor on
// another server, a restored shard, RESET MASTER).
type Source struct {
	Version   string  `json:"version"`
	Connector string  `json:"connector"` // mysql or mariadb
	Name      string  `json:"name"`
	TsMs      int64   `json:"ts_ms"`
	Snapshot  string  `json:"snapshot"` // first, true, last, ... during a snapshot; false when streaming
	DB        string  `json:"db"`
	Sequence  *string `json:"sequence"`
	TsUs      int64   `json:"ts_us"`
	TsNs      int64   `json:"ts_ns"`
	Table     string  `json:"table"`
	ServerID  uint32  `json:"server_id"`
	GTID      string  `json:"gtid"` // "" for null
	File      string  `json:"file"`
	Pos       uint32  `json:"pos"`
	Row       int     `json:"row"`
	Thread    *int64  `json:"thread"`
	Query     *string `json:"query"`
	Shard     int     `json:"shard"`
	Epoch     int64   `json:"epoch"`
}

// Operations.
const (
	OpCreate = "c"
	OpUpdate = "u"
	OpDelete = "d"
	OpRead   = "r" // snapshot read
)

// Seq orders the source positions of one shard: the binlog file's sequence
// number in the high 32 bits, the position in the low. Binlog files are
// named <base>.<number>, and positions within a file fit 32 bits.
func (s Source) Seq() (int64, error) {
	i := strings.LastIndexByte(s.File, '.')
	n, err := strconv.ParseUint(s.File[i+1:], 10, 31)
	if i < 0 || err != nil {
		return 0, fmt.Errorf("source file %q is not <base>.<number>", s.File)
	}
	return int64(n)<<32 | int64(s.Pos), nil
}

// Position is where a change comes from, in the order of its shard's
// changes: (Epoch, Seq, Row).
type Position struct {
	Shard int
	Epoch int64
	Seq   int64 // Source.Seq
	Row   int
	// Snapshot is set for a snapshot read: its epoch's state replaces
	// whatever the shard's earlier epochs built.
	Snapshot bool
}

// After reports whether p comes after q in their shard's order.
func (p Position) After(q Position) bool {
	if p.Epoch != q.Epoch {
		return p.Epoch > q.Epoch
	}
	if p.Seq != q.Seq {
		return p.Seq > q.Seq
	}
	return p.Row > q.Row
}

// Version renders p as decimal text that sorts as positions do, for a
// DECIMAL(40,0) column: Epoch, then Seq in 19 digits, then Row in 9.
func (p Position) Version() string {
	return fmt.Sprintf("%d%019d%09d", p.Epoch, p.Seq, p.Row)
}

// Position returns the change's position; op is its envelope's op.
func (s Source) Position(op string) (Position, error) {
	seq, err := s.Seq()
	if err != nil {
		return Position{}, err
	}
	if s.Row < 0 || s.Row >= 1e9 {
		return Position{}, fmt.Errorf("source row %d out of range", s.Row)
	}
	if s.Epoch < 0 || s.Epoch >= 1e9 {
		return Position{}, fmt.Errorf("source epoch %d out of range", s.Epoch)
	}
	return Position{Shard: s.Shard, Epoch: s.Epoch, Seq: seq, Row: s.Row, Snapshot: op == OpRead}, nil
}

// Envelope is a change event whose row images decode into R.
type Envelope[R any] struct {
	Before *R     `json:"before"`
	After  *R     `json:"after"`
	Source Source `json:"source"`
	Op     string `json:"op"`
	TsMs   int64  `json:"ts_ms"`
}

// withSchema is a message of the json-with-schema format (Kafka Connect's
// JsonConverter with schemas.enable=true).
type withSchema struct {
	Schema  json.RawMessage `json:"schema"`
	Payload json.RawMessage `json:"payload"`
}

// schemaPrefix starts every json-with-schema message.
var schemaPrefix = []byte(`{"schema":`)

// Payload returns the payload of a json-with-schema message, or value
// itself when it is plain JSON.
func Payload(value []byte) ([]byte, error) {
	if !bytes.HasPrefix(bytes.TrimLeft(value, " \t\r\n"), schemaPrefix) {
		return value, nil
	}
	var w withSchema
	if err := json.Unmarshal(value, &w); err != nil {
		return nil, err
	}
	if len(w.Payload) == 0 {
		return nil, fmt.Errorf("json-with-schema message without payload")
	}
	return w.Payload, nil
}

// Decode reads a change event value, plain JSON or json-with-schema, and
// checks what every consumer relies on: a known op with the row images it
// implies, and a source position.
func Decode[R any](value []byte) (Envelope[R], error) {
	var e Envelope[R]
	payload, err := Payload(value)
	if err != nil {
		return e, fmt.Errorf("not a change event: %w", err)
	}
	if err := json.Unmarshal(payload, &e); err != nil {
		return e, fmt.Errorf("not a change event: %w", err)
	}
	switch e.Op {
	case OpCreate, OpRead:
		if e.After == nil {
			return e, fmt.Errorf("op %q without after", e.Op)
		}
	case OpUpdate:
		if e.After == nil || e.Before == nil {
			return e, fmt.Errorf("op u without before and after")
		}
	case OpDelete:
		if e.Before == nil {
			return e, fmt.Errorf("op d without before")
		}
	default:
		return e, fmt.Errorf("unknown op %q", e.Op)
	}
	if _, err := e.Source.Seq(); err != nil {
		return e, err
	}
	return e, nil
}
