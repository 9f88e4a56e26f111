package replay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/google/uuid"
)

// Range is a replay range: every transaction from the first one at or
// after From to the last one before To. A GTID set S as a bound stands for
// the first transaction not in S, so --from S starts after S and --to S
// ends with S's last transaction.
type Range struct {
	From, To Bound
	// Flavor is the server's (mysql or mariadb): it reads GTIDs.
	Flavor string
	// Limit also ends the range at the live producer's checkpoint, so that
	// a replay into the live topics never runs ahead of it; zero for none.
	Limit Limit
	// Floor also starts the range no earlier than where the live epoch's
	// stream starts (its snapshot), so that a replay into the live topics
	// never publishes, with the epoch's number, what the consumers got
	// through the snapshot; zero for none.
	Floor Limit
}

// Limit is a checkpoint: the transactions before it are those in its GTID
// set when it has one, else those before its position.
type Limit struct {
	Pos  mysql.Position
	GTID string
}

func (l Limit) set() bool { return l.GTID != "" || l.Pos.Name != "" }

// ErrRange is returned for a range that cannot be read as written.
var ErrRange = errors.New("bad range")

// Plan is a range resolved against a source: where reading starts and ends.
type Plan struct {
	Range
	Source Source
	// Start is the first file read; End is where the newest binlog ended
	// when the plan was made: the range never goes past it.
	Start string
	End   mysql.Position
	// Files are the files from Start to End, with their sizes.
	Files []Binlog

	fromSet, toSet, limitSet, floorSet mysql.GTIDSet
}

// Resolve checks the range against what src holds and finds where to start.
func Resolve(ctx context.Context, r Range, src Source) (*Plan, error) {
	p := &Plan{Range: r, Source: src}
	var err error
	for _, b := range []struct {
		gtid string
		set  *mysql.GTIDSet
	}{{r.From.GTID, &p.fromSet}, {r.To.GTID, &p.toSet}, {r.Limit.GTID, &p.limitSet}, {r.Floor.GTID, &p.floorSet}} {
		if b.gtid == "" {
			continue
		}
		if *b.set, err = mysql.ParseGTIDSet(r.Flavor, b.gtid); err != nil {
			return nil, fmt.Errorf("%w: GTID set %q is not a %s GTID set: %v", ErrRange, b.gtid, r.Flavor, err)
		}
	}
	if err := p.checkOrder(); err != nil {
		return nil, err
	}
	files, err := src.Binlogs(ctx)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: %s holds no binlog", ErrNoBinlog, src.Describe())
	}
	last := files[len(files)-1]
	p.End = mysql.Position{Name: last.Name, Pos: uint32(last.Size)}
	if p.Start, err = p.start(ctx, files); err != nil {
		return nil, err
	}
	for _, f := range files {
		if mysql.CompareBinlogFileName(f.Name, p.Start) >= 0 {
			p.Files = append(p.Files, f)
		}
	}
	return p, nil
}

// checkOrder refuses a --from after --to where the two can be compared.
func (p *Plan) checkOrder() error {
	from, to := p.From, p.To
	after := false
	switch {
	case from.Kind == AtNow && to.Kind != AtNow:
		after = to.Kind == AtStart
	case from.Kind == AtPosition && to.Kind == AtPosition:
		after = from.Pos.Compare(to.Pos) > 0
	case from.Kind == AtTime && to.Kind == AtTime:
		after = from.Time.After(to.Time)
	case from.Kind == AtGTID && to.Kind == AtGTID:
		after = p.fromSet.Contain(p.toSet) && !p.toSet.Contain(p.fromSet)
	}
	if after {
		return fmt.Errorf("%w: --from %s is after --to %s", ErrRange, from, to)
	}
	return nil
}

// start finds the first file that can hold the range's first transaction.
func (p *Plan) start(ctx context.Context, files []Binlog) (string, error) {
	oldest := files[0].Name
	switch p.From.Kind {
	case AtStart:
		return oldest, nil
	case AtNow:
		return p.End.Name, nil
	case AtPosition:
		name := p.From.Pos.Name
		for _, f := range files {
			if f.Name != name {
				continue
			}
			if int64(p.From.Pos.Pos) > f.Size {
				return "", fmt.Errorf("%w: --from %s is past the end of %s (%d bytes)", ErrRange, p.From, name, f.Size)
			}
			return name, nil
		}
		if mysql.CompareBinlogFileName(name, oldest) < 0 {
			return "", fmt.Errorf("%w: %s no longer holds %s (its oldest binlog is %s); read archived binlog files with --binlog-dir DIR",
				ErrNoBinlog, p.Source.Describe(), name, oldest)
		}
		return "", fmt.Errorf("%w: %s holds no binlog %s (it holds %s to %s)", ErrNoBinlog, p.Source.Describe(), name, oldest, p.End.Name)
	}
	// By time or GTID: the newest file that starts before the bound. Every
	// transaction of an earlier file was written before that file started,
	// so none of them is in the range.
	for i := len(files) - 1; i >= 0; i-- {
		h, err := p.Source.Header(ctx, files[i].Name)
		if err != nil {
			return "", err
		}
		if p.From.Kind == AtTime && int64(h.Created) < p.From.Time.Unix() {
			return files[i].Name, nil
		}
		if p.From.Kind == AtGTID && p.beforeIn(h.Before) {
			return files[i].Name, nil
		}
	}
	if p.From.Kind == AtGTID {
		return "", fmt.Errorf("%w: %s no longer holds the transactions right after GTID %s (its oldest binlog, %s, starts later); "+
			"read archived binlog files with --binlog-dir DIR", ErrNoBinlog, p.Source.Describe(), p.From.GTID, oldest)
	}
	// Every file starts after the time: the range starts in the oldest
	// unless files before it were purged.
	h, err := p.Source.Header(ctx, oldest)
	if err != nil {
		return "", err
	}
	if h.Before != "" || !strings.HasSuffix(oldest, ".000001") {
		return "", fmt.Errorf("%w: %s no longer holds the transactions at %s (its oldest binlog, %s, was started at %s); "+
			"read archived binlog files with --binlog-dir DIR", ErrNoBinlog, p.Source.Describe(), p.From,
			oldest, time.Unix(int64(h.Created), 0).UTC().Format(time.RFC3339))
	}
	return oldest, nil
}

// beforeIn reports whether every transaction before a file (its header's
// GTID set) is in --from's set.
func (p *Plan) beforeIn(before string) bool {
	if before == "" {
		return true
	}
	set, err := mysql.ParseGTIDSet(p.Flavor, before)
	return err == nil && p.fromSet.Contain(set)
}

// Txn is where a transaction of the range starts.
type Txn struct {
	Pos  mysql.Position
	GTID string // empty without GTIDs
	Time uint32 // the binlog's timestamp, seconds
}

// verdict is what happens to a transaction.
type verdict int

const (
	skip verdict = iota
	take
	stop
)

// judge decides on a transaction that starts at t; started is whether an
// earlier one was taken.
func (p *Plan) judge(t Txn, started bool) verdict {
	in := func(set mysql.GTIDSet) bool { return t.GTID != "" && containsGTID(set, p.Flavor, t.GTID) }
	switch {
	case t.Pos.Compare(p.End) >= 0,
		p.To.Kind == AtPosition && t.Pos.Compare(p.To.Pos) >= 0,
		p.To.Kind == AtTime && int64(t.Time) >= p.To.Time.Unix(),
		p.To.Kind == AtGTID && !in(p.toSet),
		p.Limit.GTID != "" && !in(p.limitSet),
		p.Limit.GTID == "" && p.Limit.Pos.Name != "" && t.Pos.Compare(p.Limit.Pos) >= 0:
		return stop
	case started:
		return take
	case p.From.Kind == AtNow,
		p.From.Kind == AtPosition && t.Pos.Compare(p.From.Pos) < 0,
		p.From.Kind == AtTime && int64(t.Time) < p.From.Time.Unix(),
		p.From.Kind == AtGTID && in(p.fromSet),
		p.Floor.GTID != "" && in(p.floorSet),
		p.Floor.GTID == "" && p.Floor.Pos.Name != "" && t.Pos.Compare(p.Floor.Pos) < 0:
		return skip
	}
	return take
}

// containsGTID reports whether set holds one transaction's GTID.
func containsGTID(set mysql.GTIDSet, flavor, gtid string) bool {
	one, err := mysql.ParseGTIDSet(flavor, gtid)
	return err == nil && set.Contain(one)
}

// Walk reads the plan's range from its source and calls fn with each event
// of each transaction taken, and at with the position reached after every
// event (for progress).
func (p *Plan) Walk(ctx context.Context, fn func(file string, ev *replication.BinlogEvent) error, at func(mysql.Position)) error {
	var (
		started, inTxn, taking bool
		pendingBegin           *replication.BinlogEvent // MySQL: the GTID event before its BEGIN
	)
	return p.Source.Read(ctx, p.Start, func(file string, ev *replication.BinlogEvent) error {
		h := ev.Header
		pos := mysql.Position{Name: file, Pos: h.LogPos}
		if begins, gtid := txnStart(ev); begins && !(inTxn && pendingBegin != nil) {
			t := Txn{Pos: mysql.Position{Name: file, Pos: h.LogPos - h.EventSize}, GTID: gtid, Time: h.Timestamp}
			switch p.judge(t, started) {
			case stop:
				return errStop
			case take:
				started, taking = true, true
			default:
				taking = false
			}
			inTxn = true
			pendingBegin = nil
			if _, ok := ev.Event.(*replication.GTIDEvent); ok {
				pendingBegin = ev // a MySQL GTID event is followed by its BEGIN
			}
		} else if pendingBegin != nil {
			pendingBegin = nil
		}
		if taking && inTxn {
			if err := fn(file, ev); err != nil {
				return err
			}
		}
		if ends(ev) {
			inTxn, taking = false, false
		}
		if at != nil {
			at(pos)
		}
		if !inTxn && pos.Compare(p.End) >= 0 {
			return errStop
		}
		return nil
	})
}

// txnStart reports whether ev starts a transaction, with its GTID.
func txnStart(ev *replication.BinlogEvent) (bool, string) {
	switch e := ev.Event.(type) {
	case *replication.MariadbGTIDEvent:
		return true, e.GTID.String()
	case *replication.GTIDEvent:
		if u, err := uuid.FromBytes(e.SID); err == nil && u != uuid.Nil {
			return true, u.String() + ":" + strconv.FormatInt(e.GNO, 10)
		}
		return true, ""
	case *replication.QueryEvent:
		return string(e.Query) == "BEGIN", ""
	}
	return false, ""
}

// ends reports whether ev ends a transaction: a commit, or a statement
// other than BEGIN (DDL, or a commit of a non-transactional engine).
func ends(ev *replication.BinlogEvent) bool {
	switch e := ev.Event.(type) {
	case *replication.XIDEvent:
		return true
	case *replication.QueryEvent:
		return string(e.Query) != "BEGIN"
	}
	return false
}
