package generator

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shopledger/shopledger/internal/spool"
)

// The posted-events queue: POST /api/v1/events answers 202 only once its
// events are on disk (written, fsynced, renamed), one file per request in
// <shared>/ingest/queue; a tick takes whole requests into its events file
// and removes their queue files once that file is committed. A crash in
// between puts the same lines into a later file too, where they are the
// same events (same identity) and recorded as duplicates.

// queued is one accepted request.
type queued struct {
	path  string
	lines [][]byte
}

var queueSeq atomic.Uint64

// enqueue writes lines durably as a new queue file.
func enqueue(dir string, lines [][]byte) (queued, error) {
	name := fmt.Sprintf("%020d-%06d.jsonl", time.Now().UnixNano(), queueSeq.Add(1)%1_000_000)
	w, err := spool.Create(filepath.Join(dir, name))
	if err != nil {
		return queued{}, err
	}
	for _, l := range lines {
		w.Write(l)
		w.WriteByte('\n')
	}
	if err := w.Commit(); err != nil {
		return queued{}, err
	}
	return queued{path: filepath.Join(dir, name), lines: lines}, nil
}

// loadQueue reads the queue files a previous run left, oldest first.
func loadQueue(dir string) ([]queued, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []queued
	for _, name := range names {
		q := queued{path: name}
		err := spool.ReadLines(name, spool.MaxEventLine, func(l spool.Line) error {
			if !l.TooLong() && len(strings.TrimSpace(string(l.Bytes))) > 0 {
				q.lines = append(q.lines, append([]byte(nil), l.Bytes...))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("queued events %s: %w", name, err)
		}
		out = append(out, q)
	}
	return out, nil
}

// dequeue removes the queue files of requests now in a committed events
// file.
func dequeue(taken []queued) error {
	for _, q := range taken {
		if err := os.Remove(q.path); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	if len(taken) > 0 {
		if d, err := os.Open(filepath.Dir(taken[0].path)); err == nil {
			_ = d.Sync()
			d.Close()
		}
	}
	return nil
}

func countLines(qs []queued) int {
	n := 0
	for _, q := range qs {
		n += len(q.lines)
	}
	return n
}
