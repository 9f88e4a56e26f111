package capture

import "errors"

// ErrFatal wraps errors that restarting cannot mend (a checkpoint of another
// server, a purged binlog without when_needed, missing column metadata,
// missing binlog settings); Run returns them instead of retrying.
var ErrFatal = errors.New("fatal")

// ErrDiverged is returned (wrapped in ErrFatal) when the shard's server is
// behind the checkpoint: its GTID history lacks transactions already
// published (a backup restored, a failover that lost transactions, RESET
// MASTER). Its positions repeat ones already published and its data no
// longer holds what the consumers applied: only a new snapshot (of a new
// epoch) makes the consumers exact again, which snapshot_mode when_needed
// takes by itself.
var ErrDiverged = errors.New("the shard's server is behind the checkpoint")

// ErrBinlogPurged is returned (wrapped in ErrFatal) when the binlog the
// checkpoint points into has been purged from the shard and the snapshot
// mode is not when_needed.
var ErrBinlogPurged = errors.New("binlog purged")

// ErrIdentityMismatch is returned (wrapped in ErrFatal) when a
// file/position checkpoint was taken on another server than the one the
// capture connects to: positions are meaningless across servers. (A GTID
// checkpoint re-anchors instead.)
var ErrIdentityMismatch = errors.New("checkpoint belongs to another server")

// ErrNoColumnNames is returned (wrapped in ErrFatal) for a table map event
// without column names: the server must run with binlog_row_metadata=FULL.
var ErrNoColumnNames = errors.New("binlog carries no column names: set binlog_row_metadata=FULL on the server")

// ErrSnapshotLock is returned when the snapshot's global read lock was not
// granted within Config.SnapshotLockTimeout; the capture tries again later.
var ErrSnapshotLock = errors.New("snapshot lock")

// ErrUnsupportedType is returned (wrapped in ErrFatal) for a captured
// column of a type the encoder does not know.
var ErrUnsupportedType = errors.New("unsupported column type")

// ErrTopicName is returned by ValidTopic for a name Kafka refuses (an
// outbox aggregate type that cannot be part of a topic name).
var ErrTopicName = errors.New("invalid topic name")
