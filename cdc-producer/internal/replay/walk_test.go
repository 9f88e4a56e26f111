package replay

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/shopledger/shopledger/internal/localdb"
	"github.com/shopledger/shopledger/internal/stacktest"
)

// history is a shard whose table t got one transaction per row id 1..n,
// with where each one ended.
type history struct {
	inst *localdb.Instance
	root *sql.DB
	ends []mysql.Position // ends[i]: the end of the transaction of id i+1
	gtid []string         // gtid[i]: the server's GTID position after it
	at   time.Time        // a time between ids 5 and 6
}

func newHistory(t *testing.T) *history {
	t.Helper()
	h := &history{inst: stacktest.MariaDB(t)}
	var err error
	if h.root, err = h.inst.DB(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.root.Close() })
	h.exec(t, "CREATE DATABASE shop")
	h.exec(t, "CREATE TABLE shop.t (id INT PRIMARY KEY, v INT)")
	for id := 1; id <= 10; id++ {
		if id == 4 || id == 8 {
			h.exec(t, "FLUSH BINARY LOGS")
		}
		if id == 6 {
			// Binlog timestamps have whole seconds.
			time.Sleep(1100 * time.Millisecond)
			h.at = time.Now().Truncate(time.Second)
			time.Sleep(time.Until(h.at.Add(time.Second)) + 50*time.Millisecond)
			h.at = h.at.Add(time.Second)
		}
		h.exec(t, fmt.Sprintf("INSERT INTO shop.t VALUES (%d, %d)", id, id*10))
		var p mysql.Position
		var gtid string
		cols := 0
		rows, err := h.root.Query("SHOW MASTER STATUS")
		if err != nil {
			t.Fatal(err)
		}
		names, _ := rows.Columns()
		cols = len(names)
		for rows.Next() {
			dest := []any{&p.Name, &p.Pos}
			for range cols - 2 {
				dest = append(dest, new(any))
			}
			if err := rows.Scan(dest...); err != nil {
				t.Fatal(err)
			}
		}
		rows.Close()
		if err := h.root.QueryRow("SELECT @@gtid_binlog_pos").Scan(&gtid); err != nil {
			t.Fatal(err)
		}
		h.ends, h.gtid = append(h.ends, p), append(h.gtid, gtid)
	}
	return h
}

func (h *history) exec(t *testing.T, q string) {
	t.Helper()
	if _, err := h.root.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (h *history) server(t *testing.T) *Server {
	host, port, _ := net.SplitHostPort(h.inst.Addr())
	p, _ := strconv.Atoi(port)
	return &Server{DB: stacktest.As(t, h.inst, "cdc", ""), Syncer: replication.BinlogSyncerConfig{
		ServerID: 4242, Flavor: mysql.MariaDBFlavor, Host: host, Port: uint16(p), User: "cdc",
		TimestampStringLocation: time.UTC, Logger: quiet,
	}}
}

// ids walks r over src and returns the ids inserted into t by the
// transactions taken, in order.
func ids(t *testing.T, r Range, src Source) ([]int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.Flavor = mysql.MariaDBFlavor
	p, err := Resolve(ctx, r, src)
	if err != nil {
		return nil, err
	}
	var out []int
	err = p.Walk(ctx, func(_ string, ev *replication.BinlogEvent) error {
		if e, ok := ev.Event.(*replication.RowsEvent); ok && string(e.Table.Table) == "t" {
			for _, row := range e.Rows {
				out = append(out, int(row[0].(int32)))
			}
		}
		return nil
	}, nil)
	return out, err
}

func bound(t *testing.T, s string) Bound {
	t.Helper()
	b, err := ParseBound(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWalk(t *testing.T) {
	h := newHistory(t)
	pos := func(i int) string { return fmt.Sprintf("%s:%d", h.ends[i-1].Name, h.ends[i-1].Pos) }
	cases := []struct {
		name     string
		from, to string
		want     []int
	}{
		{"everything", "start", "now", []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"positions", pos(3), pos(7), []int{4, 5, 6, 7}},
		{"positions within a file", pos(4), pos(6), []int{5, 6}},
		{"GTID sets", h.gtid[2], h.gtid[6], []int{4, 5, 6, 7}},
		{"from a GTID to now", h.gtid[7], "now", []int{9, 10}},
		{"a time", h.at.Format(time.RFC3339), "now", []int{6, 7, 8, 9, 10}},
		{"up to a time", "start", h.at.Format(time.RFC3339), []int{1, 2, 3, 4, 5}},
		{"an empty range", pos(5), pos(5), nil},
		{"from now", "now", "now", nil},
	}
	srv := h.server(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ids(t, Range{From: bound(t, c.from), To: bound(t, c.to)}, srv)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("from %s to %s: ids %v, want %v", c.from, c.to, got, c.want)
			}
		})
	}

	t.Run("limited by a checkpoint", func(t *testing.T) {
		for _, l := range []Limit{{GTID: h.gtid[5]}, {Pos: h.ends[5]}} {
			got, err := ids(t, Range{From: bound(t, "start"), To: bound(t, "now"), Limit: l}, srv)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != "[1 2 3 4 5 6]" {
				t.Fatalf("limit %+v: ids %v, want 1..6", l, got)
			}
		}
	})

	t.Run("no earlier than the epoch's start", func(t *testing.T) {
		for _, f := range []Limit{{GTID: h.gtid[5]}, {Pos: h.ends[5]}} {
			for _, from := range []string{"start", pos(2), pos(8)} {
				got, err := ids(t, Range{From: bound(t, from), To: bound(t, "now"), Floor: f}, srv)
				if err != nil {
					t.Fatal(err)
				}
				want := "[7 8 9 10]"
				if from == pos(8) {
					want = "[9 10]"
				}
				if fmt.Sprint(got) != want {
					t.Fatalf("floor %+v, from %s: ids %v, want %s", f, from, got, want)
				}
			}
		}
	})

	t.Run("from after to", func(t *testing.T) {
		for _, r := range [][2]string{{pos(7), pos(3)}, {h.gtid[6], h.gtid[2]}, {"now", "start"},
			{h.at.Format(time.RFC3339), h.at.Add(-time.Hour).Format(time.RFC3339)}} {
			if _, err := ids(t, Range{From: bound(t, r[0]), To: bound(t, r[1])}, srv); !errors.Is(err, ErrRange) {
				t.Fatalf("from %s to %s: %v, want ErrRange", r[0], r[1], err)
			}
		}
	})

	t.Run("purged, then from archived files", func(t *testing.T) {
		dir := t.TempDir()
		files, err := srv.Binlogs(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// The server's own files, as an operator's archive would hold them.
		for _, f := range files {
			copyFile(t, filepath.Join(h.inst.Dir, "data", f.Name), filepath.Join(dir, f.Name))
		}
		os.WriteFile(filepath.Join(dir, "binlog.index"), []byte("not a binlog\n"), 0o644)
		h.exec(t, fmt.Sprintf("PURGE BINARY LOGS TO '%s'", h.ends[9].Name))

		_, err = ids(t, Range{From: bound(t, pos(3)), To: bound(t, "now")}, srv)
		if !errors.Is(err, ErrNoBinlog) {
			t.Fatalf("from a purged file: %v, want ErrNoBinlog", err)
		}
		t.Logf("the error reads: %v", err)
		_, err = ids(t, Range{From: bound(t, h.gtid[2]), To: bound(t, "now")}, srv)
		if !errors.Is(err, ErrNoBinlog) {
			t.Fatalf("from a purged GTID: %v, want ErrNoBinlog", err)
		}
		_, err = ids(t, Range{From: bound(t, h.at.Add(-time.Hour).Format(time.RFC3339)), To: bound(t, "now")}, srv)
		if !errors.Is(err, ErrNoBinlog) {
			t.Fatalf("from a time before every file held: %v, want ErrNoBinlog", err)
		}
		t.Logf("the error reads: %v", err)
		archive := &Dir{Path: dir, Configure: func(p *replication.BinlogParser) {
			p.SetFlavor(mysql.MariaDBFlavor)
			p.SetTimestampStringLocation(time.UTC)
		}}
		for _, c := range cases {
			got, err := ids(t, Range{From: bound(t, c.from), To: bound(t, c.to)}, archive)
			if err != nil {
				t.Fatalf("%s from the archive: %v", c.name, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("%s from the archive: ids %v, want %v", c.name, got, c.want)
			}
		}
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestParseBound(t *testing.T) {
	for in, want := range map[string]Bound{
		"binlog.000003:1234": {Kind: AtPosition, Pos: mysql.Position{Name: "binlog.000003", Pos: 1234}},
		"mysql-bin.000012:4": {Kind: AtPosition, Pos: mysql.Position{Name: "mysql-bin.000012", Pos: 4}},
		"0-1-100":            {Kind: AtGTID, GTID: "0-1-100"},
		"0-1-100,1-2-7":      {Kind: AtGTID, GTID: "0-1-100,1-2-7"},
		"3e11fa47-71ca-11e1-9e33-c80aa9429562:1-23": {Kind: AtGTID, GTID: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-23"},
		"3e11fa47-71ca-11e1-9e33-c80aa9429562:23":   {Kind: AtGTID, GTID: "3e11fa47-71ca-11e1-9e33-c80aa9429562:23"},
		"2026-11-24T10:00:00Z":                      {Kind: AtTime, Time: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)},
		"start":                                     {Kind: AtStart},
		"now":                                       {Kind: AtNow},
		"3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,3e11fa47-71ca-11e1-9e33-c80aa9429563:2": {Kind: AtGTID, GTID: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,3e11fa47-71ca-11e1-9e33-c80aa9429563:2"},
	} {
		got, err := ParseBound(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if !got.Time.Equal(want.Time) || got.Kind != want.Kind || got.Pos != want.Pos || got.GTID != want.GTID {
			t.Errorf("%q: %+v, want %+v", in, got, want)
		}
	}
	for _, bad := range []string{"", "binlog.000003", "binlog.000003:x", "binlog.000003:2", "yesterday", "0-1", "2026-11-24T10:00"} {
		if _, err := ParseBound(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

var quiet = slog.New(slog.DiscardHandler)
