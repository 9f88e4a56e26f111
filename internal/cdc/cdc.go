// Package cdc is the contract between the cdc-producer and the consumers of
// its topics (SPEC §5): the Debezium change-event envelope, its source block,
// and the order of source positions within one shard.
package cdc

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Source is the envelope's source block: Debezium's MySQL fields plus the
// shard. (shard, table, file, pos, row) identifies a row change uniquely.
type Source struct {
	Version   string `json:"version"`
	Connector string `json:"connector"`
	Name      string `json:"name"`
	TsMs      int64  `json:"ts_ms"`
	Snapshot  string `json:"snapshot"`
	DB        string `json:"db"`
	Table     string `json:"table"`
	ServerID  uint32 `json:"server_id"`
	GTID      string `json:"gtid,omitempty"`
	File      string `json:"file"`
	Pos       uint32 `json:"pos"`
	Row       int    `json:"row"`
	Shard     int    `json:"shard"`
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

// RowVersion orders the changes of one shard, rows of one event included:
// Seq × 10⁹ + Row, as decimal text (it exceeds 64 bits), for a
// DECIMAL(30,0) column.
func (s Source) RowVersion() (string, error) {
	seq, err := s.Seq()
	if err != nil {
		return "", err
	}
	if s.Row < 0 || s.Row >= 1e9 {
		return "", fmt.Errorf("source row %d out of range", s.Row)
	}
	return fmt.Sprintf("%d%09d", seq, s.Row), nil
}

// Envelope is a change event whose row images decode into R.
type Envelope[R any] struct {
	Before *R     `json:"before"`
	After  *R     `json:"after"`
	Source Source `json:"source"`
	Op     string `json:"op"`
	TsMs   int64  `json:"ts_ms"`
}

// Decode reads a change event value and checks what every consumer relies
// on: a known op with the row images it implies, and a source position.
func Decode[R any](value []byte) (Envelope[R], error) {
	var e Envelope[R]
	if err := json.Unmarshal(value, &e); err != nil {
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
