// Package spool is the shared directory layout of SPEC §2 through which the
// stages hand files to each other, and the one way every stage writes there:
// to a temporary name in its own folder, fsynced, then renamed, so a reader
// never sees half a file.
package spool

import (
	"bufio"
	"fmt"
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
	if d, err := os.Open(filepath.Dir(w.final)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Abort drops the temporary file.
func (w *Writer) Abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

// ReadLines calls fn for each line of path with its 1-based number. Lines may
// be up to 16 MiB long. The slice passed to fn is only valid during the call.
func ReadLines(path string, fn func(n int, line []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		if err := fn(n, sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s line %d: %w", path, n+1, err)
	}
	return nil
}
