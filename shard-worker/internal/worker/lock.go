package worker

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// LockName is the MySQL named lock a shard's worker holds while it runs.
// The ledger reads state and writes results in batches on the assumption
// that it is the shard's only writer; the lock turns a second worker on the
// same shard into a clear start-up error instead of lost updates.
const LockName = "shopledger.shard-worker"

// ErrLocked is returned when another process holds the shard's writer lock.
var ErrLocked = errors.New("another shard-worker holds this shard's writer lock")

// HoldWriterLock takes the lock on a connection of its own and keeps it
// until ctx ends. If the connection drops (the server restarted), it takes
// the lock again; it returns ErrLocked if someone else took it meanwhile.
func HoldWriterLock(ctx context.Context, db *sql.DB, acquired chan<- struct{}) error {
	conn, err := lock(ctx, db)
	if err != nil {
		return err
	}
	close(acquired)
	for {
		select {
		case <-ctx.Done():
			release(conn)
			return nil
		case <-time.After(2 * time.Second):
		}
		if err := conn.PingContext(ctx); err == nil {
			continue
		}
		conn.Close()
		for {
			conn, err = lock(ctx, db)
			if err == nil || errors.Is(err, ErrLocked) || ctx.Err() != nil {
				break
			}
			select { // server still away: try again shortly
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

func lock(ctx context.Context, db *sql.DB) (*sql.Conn, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("writer lock: %w", err)
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", LockName).Scan(&got); err != nil {
		conn.Close()
		return nil, fmt.Errorf("writer lock: %w", err)
	}
	if got.Int64 != 1 {
		conn.Close()
		return nil, ErrLocked
	}
	return conn, nil
}

func release(conn *sql.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn.ExecContext(ctx, "SELECT RELEASE_LOCK(?)", LockName)
	conn.Close()
}
