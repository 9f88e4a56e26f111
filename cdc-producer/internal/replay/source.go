package replay

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// Binlog is one binlog file and its size.
type Binlog struct {
	Name string
	Size int64
}

// Header is what the first events of a binlog file say.
type Header struct {
	// Created is when the server started the file.
	Created uint32
	// Version is the server's version, as the file's format description
	// gives it ("10.11.6-MariaDB-log", "8.4.3").
	Version string
	// Before is the GTID set of every transaction before the file (MariaDB's
	// Gtid_list, MySQL's Previous_gtids); empty when the file has none.
	Before string
}

// errStop ends a Read without error.
var errStop = errors.New("stop reading")

// Source is where the binlog is read from: the server, or a folder of
// archived binlog files.
type Source interface {
	// Binlogs lists the binlog files held, oldest first.
	Binlogs(ctx context.Context) ([]Binlog, error)
	// Header reads the first events of file.
	Header(ctx context.Context, file string) (Header, error)
	// Read calls fn with every event from the start of file on, through the
	// files after it, until fn returns an error (errStop ends it without
	// one), ctx ends or, for a folder, its last file ends.
	Read(ctx context.Context, file string, fn func(file string, ev *replication.BinlogEvent) error) error
	// Describe names the source in messages.
	Describe() string
}

// ErrNoBinlog is returned when a binlog file of the range is not held.
var ErrNoBinlog = errors.New("binlog file not held")

// Server reads the binlog from a running server as a replica.
type Server struct {
	DB *sql.DB // for SHOW BINARY LOGS
	// Syncer is the replica's configuration (host, port, user, server id,
	// flavor, decoding options).
	Syncer replication.BinlogSyncerConfig
}

// Describe implements Source.
func (s *Server) Describe() string {
	return fmt.Sprintf("server %s", net.JoinHostPort(s.Syncer.Host, strconv.Itoa(int(s.Syncer.Port))))
}

// Binlogs implements Source.
func (s *Server) Binlogs(ctx context.Context) ([]Binlog, error) {
	rows, err := s.DB.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, fmt.Errorf("list binlogs of %s: %w", s.Describe(), err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []Binlog
	for rows.Next() {
		var b Binlog
		dest := []any{&b.Name, &b.Size}
		for range len(cols) - 2 {
			dest = append(dest, new(any))
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// Header implements Source.
func (s *Server) Header(ctx context.Context, file string) (Header, error) {
	var h Header
	err := s.Read(ctx, file, func(_ string, ev *replication.BinlogEvent) error {
		return header(&h, ev)
	})
	return h, err
}

// Read implements Source.
func (s *Server) Read(ctx context.Context, file string, fn func(string, *replication.BinlogEvent) error) error {
	syncer := replication.NewBinlogSyncer(s.Syncer)
	defer syncer.Close()
	st, err := syncer.StartSync(mysql.Position{Name: file, Pos: 4})
	if err != nil {
		return fmt.Errorf("read binlog %s from %s: %w", file, s.Describe(), err)
	}
	current := file
	for {
		ev, err := st.GetEvent(ctx)
		if err != nil {
			var me *mysql.MyError
			if errors.As(err, &me) && me.Code == 1236 { // ER_MASTER_FATAL_ERROR_READING_BINLOG
				return fmt.Errorf("%w: %s no longer holds binlog %s (%v); read archived files with --binlog-dir",
					ErrNoBinlog, s.Describe(), current, err)
			}
			return fmt.Errorf("read binlog %s from %s: %w", current, s.Describe(), err)
		}
		if r, ok := ev.Event.(*replication.RotateEvent); ok {
			current = string(r.NextLogName)
			continue
		}
		if ev.Header.EventType == replication.HEARTBEAT_EVENT || ev.Header.EventType == replication.HEARTBEAT_LOG_EVENT_V2 {
			continue
		}
		if err := fn(current, ev); err != nil {
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}
	}
}

// Dir reads archived binlog files from a folder (mysqlbinlog's
// --read-from-remote-server copies, or the server's own files).
type Dir struct {
	Path string
	// Configure sets the parser's decoding options as the live capture
	// sets its replica's.
	Configure func(*replication.BinlogParser)
}

// Describe implements Source.
func (d *Dir) Describe() string { return "folder " + d.Path }

// Binlogs implements Source: every file that starts with the binlog magic
// number, in name order (binlog names end in a zero-padded sequence).
func (d *Dir) Binlogs(context.Context) ([]Binlog, error) {
	entries, err := os.ReadDir(d.Path)
	if err != nil {
		return nil, fmt.Errorf("binlog folder: %w", err)
	}
	var out []Binlog
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		ok, err := isBinlog(filepath.Join(d.Path, e.Name()))
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		out = append(out, Binlog{Name: e.Name(), Size: info.Size()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s holds no binlog files", ErrNoBinlog, d.Path)
	}
	return out, nil
}

func isBinlog(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := f.Read(magic); err != nil {
		return false, nil
	}
	return string(magic) == string(replication.BinLogFileHeader), nil
}

// Header implements Source.
func (d *Dir) Header(ctx context.Context, file string) (Header, error) {
	var h Header
	err := d.parse(file, func(ev *replication.BinlogEvent) error { return header(&h, ev) })
	if errors.Is(err, errStop) {
		err = nil
	}
	return h, err
}

// Read implements Source.
func (d *Dir) Read(ctx context.Context, file string, fn func(string, *replication.BinlogEvent) error) error {
	files, err := d.Binlogs(ctx)
	if err != nil {
		return err
	}
	i := sort.Search(len(files), func(i int) bool { return files[i].Name >= file })
	if i == len(files) || files[i].Name != file {
		return fmt.Errorf("%w: %s has no %s", ErrNoBinlog, d.Describe(), file)
	}
	for _, f := range files[i:] {
		err := d.parse(f.Name, func(ev *replication.BinlogEvent) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fn(f.Name, ev)
		})
		if errors.Is(err, errStop) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *Dir) parse(file string, fn func(*replication.BinlogEvent) error) error {
	p := replication.NewBinlogParser()
	if d.Configure != nil {
		d.Configure(p)
	}
	switch err := p.ParseFile(filepath.Join(d.Path, file), 4, fn); {
	case err == nil:
		return nil
	case errors.Is(err, errStop):
		return errStop
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %v", ErrNoBinlog, err)
	default:
		return fmt.Errorf("parse %s: %w", file, err)
	}
}

// header fills h from a file's first events and stops at the first event
// of a transaction, or after the events that make up a file's head.
func header(h *Header, ev *replication.BinlogEvent) error {
	switch e := ev.Event.(type) {
	case *replication.FormatDescriptionEvent:
		h.Created, h.Version = ev.Header.Timestamp, strings.TrimRight(e.ServerVersion, "\x00")
		if e.CreateTimestamp != 0 {
			h.Created = e.CreateTimestamp
		}
	case *replication.MariadbGTIDListEvent:
		var parts []string
		for _, g := range e.GTIDs {
			parts = append(parts, g.String())
		}
		h.Before = strings.Join(parts, ",")
		return errStop
	case *replication.PreviousGTIDsEvent:
		h.Before = e.GTIDSets
		return errStop
	case *replication.MariadbGTIDEvent, *replication.GTIDEvent, *replication.QueryEvent, *replication.RowsEvent:
		return errStop
	}
	return nil
}
