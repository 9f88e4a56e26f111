package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrLocked is returned by HoldLock when another process holds the lock.
var ErrLocked = errors.New("another process holds the lock")

// HoldLock takes the MySQL named lock name on a connection of its own,
// closes acquired, and keeps the lock until ctx ends. Stages that read
// state and write results in batches on the assumption that they are the
// only writer (a shard's worker, the splitter) hold one, which turns a
// second instance into a clear start-up error instead of lost updates.
// If the connection drops (the server restarted), it takes the lock again;
// it returns ErrLocked if someone else took it meanwhile.
func HoldLock(ctx context.Context, db *sql.DB, name string, acquired chan<- struct{}) error {
	conn, err := lock(ctx, db, name)
	if err != nil {
		return err
	}
	close(acquired)
	for {
		select {
		case <-ctx.Done():
			release(conn, name)
			return nil
		case <-time.After(2 * time.Second):
		}
		if err := conn.PingContext(ctx); err == nil {
			continue
		}
		conn.Close()
		for {
			conn, err = lock(ctx, db, name)
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

func lock(ctx context.Context, db *sql.DB, name string) (*sql.Conn, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", name).Scan(&got); err != nil {
		conn.Close()
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	if got.Int64 != 1 {
		conn.Close()
		return nil, fmt.Errorf("lock %s: %w", name, ErrLocked)
	}
	return conn, nil
}

func release(conn *sql.Conn, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn.ExecContext(ctx, "SELECT RELEASE_LOCK(?)", name)
	conn.Close()
}
