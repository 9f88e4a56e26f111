package capture

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// snapshot publishes every row of the captured tables as op "r" of epoch,
// read in one consistent transaction, and returns the checkpoint of the
// binlog position that transaction saw: streaming from it misses and
// doubles nothing. Before the first row it saves a checkpoint that marks
// the snapshot under way, so a crash during it makes the next run take a
// new snapshot of a newer epoch, and consumers drop what this one
// published.
func (c *Capture) snapshot(ctx context.Context, db *sql.DB, srv server, epoch int64) (Checkpoint, error) {
	marker := Checkpoint{Shard: c.cfg.Shard, Flavor: srv.flavor, Identity: srv.identity, Epoch: epoch, Snapshotting: true, TsMs: time.Now().UnixMilli()}
	if err := c.cps.Save(ctx, marker); err != nil {
		return Checkpoint{}, err
	}
	lock, err := db.Conn(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	defer lock.Close()
	if err := c.lockTimeout(ctx, lock); err != nil {
		return Checkpoint{}, err
	}
	snap, err := db.Conn(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	defer snap.Close()
	// A global read lock for the instant it takes to open the snapshot and
	// read the position it corresponds to; waiting for it is bounded.
	ftwrl := "FLUSH TABLES WITH READ LOCK"
	if srv.flavor == mysql.MariaDBFlavor {
		ftwrl = fmt.Sprintf("SET STATEMENT max_statement_time = %g FOR %s", c.cfg.SnapshotLockTimeout.Seconds(), ftwrl)
	}
	if _, err := lock.ExecContext(ctx, ftwrl); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: global read lock not granted within %s (a long query on the shard?): %v",
			ErrSnapshotLock, c.cfg.SnapshotLockTimeout, err)
	}
	if _, err := snap.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		return Checkpoint{}, err
	}
	if _, err := snap.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
		return Checkpoint{}, err
	}
	cp := Checkpoint{Shard: c.cfg.Shard, Flavor: srv.flavor, Identity: srv.identity, Snapshot: true, TsMs: time.Now().UnixMilli(), Epoch: epoch}
	gtidVar := "@@gtid_executed"
	if srv.flavor == "mariadb" {
		gtidVar = "@@gtid_binlog_pos"
	}
	if err := lock.QueryRowContext(ctx, "SELECT "+gtidVar).Scan(&cp.GTID); err != nil {
		return Checkpoint{}, err
	}
	cp.File, cp.Pos, err = binlogPosition(ctx, lock)
	if err != nil {
		return Checkpoint{}, err
	}
	cp.EpochFrom = &EpochStart{File: cp.File, Pos: cp.Pos, GTID: cp.GTID}
	if _, err := lock.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
		return Checkpoint{}, err
	}
	c.log.Info("snapshot started", "shard", c.cfg.Shard, "gtid", cp.GTID, "file", cp.File, "pos", cp.Pos)
	rctx, cancel := context.WithCancelCause(ctx)
	pub, stopPub := c.startPublisher(ctx, cancel)
	defer func() {
		cancel(nil)
		stopPub()
	}()
	ctx = rctx
	t := c.newTxn(cp, pub)
	tables := make([]string, 0, len(c.cfg.Tables))
	for name := range c.cfg.Tables {
		tables = append(tables, name)
	}
	sort.Strings(tables)
	total := 0
	for i, table := range tables {
		n, err := c.snapshotTable(ctx, snap, t, table, cp, i == 0, i == len(tables)-1)
		if err != nil {
			return Checkpoint{}, fmt.Errorf("table %s: %w", table, err)
		}
		total += n
	}
	if _, err := snap.ExecContext(ctx, "COMMIT"); err != nil {
		return Checkpoint{}, err
	}
	if err := t.flush(ctx); err != nil {
		return Checkpoint{}, err
	}
	if err := t.pub.send(ctx, item{cp: &cp}); err != nil {
		return Checkpoint{}, err
	}
	if err := t.pub.close(); err != nil { // every row and the checkpoint are in Kafka
		return Checkpoint{}, err
	}
	c.log.Info("snapshot done", "shard", c.cfg.Shard, "rows", total)
	return cp, nil
}

// lockTimeout bounds the wait for the global read lock on conn
// (lock_wait_timeout; on MariaDB the statement itself is bounded too).
func (c *Capture) lockTimeout(ctx context.Context, conn *sql.Conn) error {
	secs := max(1, int(c.cfg.SnapshotLockTimeout.Seconds()))
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout = %d", secs)); err != nil {
		return fmt.Errorf("snapshot lock timeout: %w", err)
	}
	return nil
}

func binlogPosition(ctx context.Context, conn *sql.Conn) (string, uint32, error) {
	for _, q := range []string{"SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"} {
		rows, err := conn.QueryContext(ctx, q)
		if err != nil {
			continue
		}
		cols, _ := rows.Columns()
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		var file string
		var pos uint64
		if rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return "", 0, err
			}
			file = string(vals[0])
			pos, _ = strconv.ParseUint(string(vals[1]), 10, 32)
		}
		rows.Close()
		if file == "" {
			return "", 0, fmt.Errorf("%w: binary logging is off on the shard", ErrFatal)
		}
		return file, uint32(pos), nil
	}
	return "", 0, fmt.Errorf("cannot read the binlog position")
}

// snapshotTable publishes every row of table as op "r", marked as
// Debezium marks them: the snapshot's first row "first", its last "last",
// a table's first and last "first_in_data_collection" and
// "last_in_data_collection", the others "true".
func (c *Capture) snapshotTable(ctx context.Context, conn *sql.Conn, t *txn, table string, cp Checkpoint, firstTable, lastTable bool) (int, error) {
	info, err := c.schema.columns(ctx, table)
	if err != nil {
		return 0, err
	}
	tbl, err := tableOfInfo(table, info)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrFatal, err)
	}
	rows, err := conn.QueryContext(ctx, "SELECT * FROM `"+strings.ReplaceAll(table, "`", "``")+"`")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return 0, err
	}
	if len(names) != len(tbl.cols) {
		return 0, fmt.Errorf("%d columns selected, information_schema lists %d (the table changed?)", len(names), len(tbl.cols))
	}
	raw := make([]sql.RawBytes, len(names))
	ptrs := make([]any, len(names))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	// A row is encoded once the next is read (to know whether it is the
	// last), so its bytes are copied out of the driver's buffer first.
	held := make([][]byte, len(names))
	vals := make([]any, len(names))
	now := time.Now()
	ch := Change{Table: tbl, Op: OpRead, After: vals, Source: Source{TsMs: now.UnixMilli(), File: cp.File, Pos: cp.Pos, Epoch: cp.Epoch}}
	n := 0
	more := rows.Next()
	for more {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		for i, b := range raw {
			if b == nil {
				vals[i] = nil
			} else {
				if held[i] == nil { // not nil even for an empty value: nil is NULL
					held[i] = make([]byte, 0, max(len(b), 64))
				}
				held[i] = append(held[i][:0], b...)
				vals[i] = held[i]
			}
		}
		more = rows.Next()
		ch.Source.Row = n
		ch.Source.Snapshot = snapshotMarker(firstTable && n == 0, lastTable && !more, n == 0, !more)
		t.pending = c.enc.Append(t.pending, &ch, now)
		c.metrics.read(table, OpRead, 1)
		n++
		if len(t.pending) >= c.cfg.FlushRows {
			if err := t.flush(ctx); err != nil {
				return n, err
			}
		}
	}
	return n, rows.Err()
}

// snapshotMarker is a snapshot row's source.snapshot.
func snapshotMarker(first, last, firstInTable, lastInTable bool) string {
	switch {
	case last:
		return SnapshotLast
	case first:
		return SnapshotFirst
	case lastInTable:
		return SnapshotLastInCollection
	case firstInTable:
		return SnapshotFirstInCollection
	}
	return SnapshotTrue
}
