// Package spool is the shared directory layout of SPEC §2 through which the
// stages hand files to each other, and the one way every stage writes there:
// to a temporary name in its own folder, fsynced, then renamed, so a reader
// never sees half a file.
package spool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Dir is the root of the shared directory (./.data/shared locally, /shared in
// containers).
type Dir string

// EventsDir is where producers drop events files.
func (d Dir) EventsDir() string { return filepath.Join(string(d), "events") }

// EventsFile is the events file of a 14-digit stem.
func (d Dir) EventsFile(stem string) string {
	return filepath.Join(d.EventsDir(), stem+".event-ingest.txt")
}

// IngestQueueDir holds the events posted to ingest and not yet written
// into an events file (ingest's own folder).
func (d Dir) IngestQueueDir() string { return filepath.Join(string(d), "ingest", "queue") }

// SplitterDir is the shard splitter's folder.
func (d Dir) SplitterDir() string { return filepath.Join(string(d), "shard-splitter") }

// SplitFile is the splitter's output for one shard.
func (d Dir) SplitFile(stem string, shard int) string {
	return filepath.Join(d.SplitterDir(), stem+".shard-splitter."+strconv.Itoa(shard)+".txt")
}

// MalformedFile lists the lines of an events file the splitter set aside,
// one JSON object per line: {"line":N,"reason":"...","raw":"..."}.
func (d Dir) MalformedFile(stem string) string {
	return filepath.Join(d.SplitterDir(), stem+".shard-splitter.malformed.txt")
}

// WorkerDir is shard's worker folder.
func (d Dir) WorkerDir(shard int) string {
	return filepath.Join(string(d), "shard-worker-"+strconv.Itoa(shard))
}

// PreparedFile is the worker's prepared output for one file.
func (d Dir) PreparedFile(stem string, shard int) string {
	return filepath.Join(d.WorkerDir(shard), stem+".shard-worker."+strconv.Itoa(shard)+".prepared.txt")
}

// StemOf returns the 14-digit stem of an events file name, or "".
func StemOf(name string) string {
	base := filepath.Base(name)
	if stem, ok := strings.CutSuffix(base, ".event-ingest.txt"); ok {
		return stem
	}
	return ""
}

// Writer writes a file under a temporary name; Commit makes it visible.
type Writer struct {
	*bufio.Writer
	f     *os.File
	final string
}

// Create starts writing path. The temporary file lives beside it, named with
// a leading dot and a .tmp suffix, so no reader globbing for the final name
// sees it.
func Create(path string) (*Writer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return nil, err
	}
	return &Writer{Writer: bufio.NewWriterSize(f, 1<<20), f: f, final: path}, nil
}

// Commit flushes, fsyncs and renames the file to its final name.
func (w *Writer) Commit() error {
	if err := w.Flush(); err != nil {
		w.Abort()
		return fmt.Errorf("write %s: %w", w.final, err)
	}
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return fmt.Errorf("sync %s: %w", w.final, err)
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return fmt.Errorf("close %s: %w", w.final, err)
	}
	if err := os.Rename(w.f.Name(), w.final); err != nil {
		return fmt.Errorf("rename %s: %w", w.final, err)
	}
	syncDir(filepath.Dir(w.final))
	return nil
}

// ErrExists is returned by CommitNew when the final name is taken.
var ErrExists = errors.New("file exists")

// CommitNew is Commit that never replaces a file: if the final name exists
// (another producer's file of the same second), the temporary file is
// dropped and ErrExists returned.
func (w *Writer) CommitNew() error {
	if err := w.Flush(); err != nil {
		w.Abort()
		return fmt.Errorf("write %s: %w", w.final, err)
	}
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return fmt.Errorf("sync %s: %w", w.final, err)
	}
	w.f.Close()
	defer os.Remove(w.f.Name())
	if err := os.Link(w.f.Name(), w.final); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s: %w", w.final, ErrExists)
		}
		return fmt.Errorf("link %s: %w", w.final, err)
	}
	syncDir(filepath.Dir(w.final))
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// Abort drops the temporary file.
func (w *Writer) Abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

// MaxEventLine is the longest events-file line the pipeline takes; a
// longer one is set aside with its reason rather than failing its file.
const MaxEventLine = 16 << 20

// MaxLine bounds the lines of the stages' own files, which wrap an event
// line with a little more.
const MaxLine = MaxEventLine + 1<<20

// Line is one line of a file.
type Line struct {
	N     int    // 1-based number
	Bytes []byte // without the newline; nil for a line longer than the limit
	Len   int    // length in bytes, also of a line set aside
}

// TooLong reports whether the line exceeded the reader's limit (its bytes
// were skipped).
func (l Line) TooLong() bool { return l.Bytes == nil && l.Len > 0 }

// ReadLines calls fn for each line of path. Lines longer than limit are
// passed without their bytes (Line.TooLong), and reading goes on after
// them. Line.Bytes is only valid during the call.
func ReadLines(path string, limit int, fn func(Line) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var buf []byte
	for n := 1; ; n++ {
		buf = buf[:0]
		length := 0
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			length += len(chunk)
			if len(buf) <= limit { // beyond, the line is only measured
				buf = append(buf, chunk...)
			}
			if err != bufio.ErrBufferFull {
				break
			}
		}
		switch {
		case err == io.EOF && length == 0:
			return nil
		case err != nil && err != io.EOF:
			return fmt.Errorf("%s line %d: %w", path, n, err)
		}
		l := Line{N: n, Len: length}
		if err == nil {
			l.Len-- // the newline
		}
		if l.Len <= limit {
			l.Bytes = buf[:l.Len]
		}
		if err := fn(l); err != nil {
			return err
		}
	}
}
