package capture

// Whether a checkpoint can be resumed from on the server the capture
// connected to: the server's GTID history must contain the checkpoint's,
// and the binlogs after it must still be there.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// checkAvailable reports ErrBinlogPurged (wrapped in ErrFatal) when the
// server no longer has every binlog event after cp. It asks before the dump
// starts, because a dump refused mid-connection can be retried away by the
// replication client instead of surfacing.
func (c *Capture) checkAvailable(ctx context.Context, db *sql.DB, cp Checkpoint) error {
	var missing string
	switch cp.Flavor {
	case mysql.MariaDBFlavor:
		// The GTID position at the start of the oldest binlog: a domain of
		// the checkpoint behind it lost events.
		var oldest string
		if err := db.QueryRowContext(ctx, "SHOW BINARY LOGS").Scan(&oldest, new(any)); err != nil {
			return fmt.Errorf("list binlogs: %w", err)
		}
		var start sql.NullString
		if err := db.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, 4)", oldest).Scan(&start); err != nil {
			return fmt.Errorf("GTID position of %s: %w", oldest, err)
		}
		have, err := mysql.ParseMariadbGTIDSet(start.String)
		if err != nil {
			return err
		}
		want, err := mysql.ParseMariadbGTIDSet(cp.GTID)
		if err != nil {
			return err
		}
		for domain, first := range have.(*mysql.MariadbGTIDSet).Sets {
			if got, ok := want.(*mysql.MariadbGTIDSet).Sets[domain]; ok && got.SequenceNumber < first.SequenceNumber {
				missing = fmt.Sprintf("the oldest binlog %s starts after GTID %s, the checkpoint is at %s", oldest, first, got)
			}
		}
	default:
		var purgedSet string
		if err := db.QueryRowContext(ctx, "SELECT @@gtid_purged").Scan(&purgedSet); err != nil {
			return fmt.Errorf("read gtid_purged: %w", err)
		}
		purged, err := mysql.ParseMysqlGTIDSet(purgedSet)
		if err != nil {
			return err
		}
		want, err := mysql.ParseMysqlGTIDSet(cp.GTID)
		if err != nil {
			return err
		}
		if !want.(*mysql.MysqlGTIDSet).Contain(purged) {
			missing = fmt.Sprintf("gtid_purged %s is not within the checkpoint's %s", purgedSet, cp.GTID)
		}
	}
	if missing == "" {
		return nil
	}
	return fmt.Errorf("%w: %w: binlog %s (checkpoint %s:%d, GTID %s) is no longer on shard %d (%s); "+
		"set capture.snapshot_mode = \"when_needed\" to take a new snapshot", ErrFatal, ErrBinlogPurged,
		cp.File, cp.File, cp.Pos, cp.GTID, c.cfg.Shard, missing)
}

// checkDiverged reports ErrDiverged when srv's GTID history lacks
// transactions of cp's.
func (c *Capture) checkDiverged(cp Checkpoint, srv server) error {
	if cp.GTID == "" {
		return nil
	}
	lost, err := behind(cp.Flavor, cp.GTID, srv.gtid)
	if err != nil {
		return fmt.Errorf("compare GTID sets: %w", err)
	}
	if lost == "" {
		return nil
	}
	return fmt.Errorf("%w: %w: shard %d has GTID %s, the checkpoint %s (%s); set capture.snapshot_mode = \"when_needed\" "+
		"to take a new snapshot, which the consumers rebuild the shard from", ErrFatal, ErrDiverged, c.cfg.Shard, srv.gtid, cp.GTID, lost)
}

// behind returns what the server's executed GTID set lacks of the
// checkpoint's, or "" when nothing.
func behind(flavor, checkpoint, server string) (string, error) {
	if flavor == mysql.MariaDBFlavor {
		cp, err := mysql.ParseMariadbGTIDSet(checkpoint)
		if err != nil {
			return "", err
		}
		have, err := mysql.ParseMariadbGTIDSet(server)
		if err != nil {
			return "", err
		}
		var lost []string
		for domain, want := range cp.(*mysql.MariadbGTIDSet).Sets {
			got, ok := have.(*mysql.MariadbGTIDSet).Sets[domain]
			if !ok || got.SequenceNumber < want.SequenceNumber {
				lost = append(lost, fmt.Sprintf("domain %d is at %s, the checkpoint at %s", domain, got, want))
			}
		}
		return strings.Join(lost, "; "), nil
	}
	cp, err := mysql.ParseMysqlGTIDSet(checkpoint)
	if err != nil {
		return "", err
	}
	have, err := mysql.ParseMysqlGTIDSet(server)
	if err != nil {
		return "", err
	}
	if have.(*mysql.MysqlGTIDSet).Contain(cp) {
		return "", nil
	}
	return "the server's gtid_executed does not contain the checkpoint's", nil
}

// purged reports whether err is the server refusing a binlog dump because
// the binlog it starts in is gone.
func purged(err error) bool {
	var me *mysql.MyError
	return errors.As(err, &me) && me.Code == 1236 // ER_MASTER_FATAL_ERROR_READING_BINLOG
}
