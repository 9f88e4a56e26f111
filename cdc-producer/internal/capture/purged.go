package capture

import (
	"context"
	"database/sql"
	"fmt"

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
