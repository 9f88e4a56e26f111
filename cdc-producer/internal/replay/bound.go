// Package replay re-reads a range of one shard's binlog, from the server as
// a replica or from archived binlog files, and hands its transactions to
// the capture's encoder, so that they are published again exactly as the
// live producer published them, with their original source positions.
package replay

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/google/uuid"
)

// BoundKind says how an end of the range was written.
type BoundKind int

// The kinds of bound.
const (
	// AtPosition is FILE:POS.
	AtPosition BoundKind = iota
	// AtGTID is a GTID set: --from starts after the transactions it holds,
	// --to ends with the last of them.
	AtGTID
	// AtTime is an RFC 3339 time: the first transaction at or after it.
	AtTime
	// AtStart is the oldest binlog the server or the folder holds.
	AtStart
	// AtNow is the end of the newest binlog when the replay starts.
	AtNow
)

// Bound is one end of a replay range, as the operator wrote it.
type Bound struct {
	Kind BoundKind
	Pos  mysql.Position // AtPosition
	GTID string         // AtGTID, as written
	Time time.Time      // AtTime
}

func (b Bound) String() string {
	switch b.Kind {
	case AtPosition:
		return fmt.Sprintf("%s:%d", b.Pos.Name, b.Pos.Pos)
	case AtGTID:
		return "GTID " + b.GTID
	case AtTime:
		return b.Time.UTC().Format(time.RFC3339Nano)
	case AtStart:
		return "start"
	default:
		return "now"
	}
}

var mariadbGTID = regexp.MustCompile(`^\d+-\d+-\d+(,\s*\d+-\d+-\d+)*$`)

// ParseBound reads FILE:POS, a MariaDB (D-S-N[,...]) or MySQL (UUID:N[-M]...)
// GTID set, an RFC 3339 time, "start" or "now".
func ParseBound(s string) (Bound, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return Bound{}, fmt.Errorf("empty position: want FILE:POS, a GTID set, an RFC 3339 time, start or now")
	case "start":
		return Bound{Kind: AtStart}, nil
	case "now":
		return Bound{Kind: AtNow}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return Bound{Kind: AtTime, Time: t}, nil
	}
	if mariadbGTID.MatchString(s) {
		if _, err := mysql.ParseMariadbGTIDSet(s); err != nil {
			return Bound{}, fmt.Errorf("GTID set %q: %w", s, err)
		}
		return Bound{Kind: AtGTID, GTID: s}, nil
	}
	if head, _, ok := strings.Cut(s, ":"); ok {
		if _, err := uuid.Parse(head); err == nil {
			if _, err := mysql.ParseMysqlGTIDSet(s); err != nil {
				return Bound{}, fmt.Errorf("GTID set %q: %w", s, err)
			}
			return Bound{Kind: AtGTID, GTID: s}, nil
		}
	}
	if i := strings.LastIndexByte(s, ':'); i > 0 {
		pos, err := strconv.ParseUint(s[i+1:], 10, 32)
		if err == nil && pos >= 4 {
			return Bound{Kind: AtPosition, Pos: mysql.Position{Name: s[:i], Pos: uint32(pos)}}, nil
		}
	}
	return Bound{}, fmt.Errorf("position %q: want FILE:POS (POS ≥ 4), a GTID set (0-1-100 or UUID:1-5), an RFC 3339 time, start or now", s)
}

// gtidFlavor is the flavor a GTID set is written in.
func gtidFlavor(set string) string {
	if mariadbGTID.MatchString(strings.TrimSpace(set)) {
		return mysql.MariaDBFlavor
	}
	return mysql.MySQLFlavor
}
