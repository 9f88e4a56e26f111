package sqldb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/sqldb"
	"github.com/shopledger/shopledger/internal/stacktest"
	"github.com/shopledger/shopledger/schema"
)

func TestSecondWriterIsRefused(t *testing.T) {
	inst := stacktest.MariaDB(t)
	stacktest.Database(t, inst, "shop", schema.Shard)
	db := stacktest.As(t, inst, "worker", "shop")
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- sqldb.HoldLock(ctx, db, "test.writer", first) }()
	select {
	case <-first:
	case err := <-done:
		t.Fatalf("first HoldLock = %v, want it to hold the lock", err)
	case <-time.After(10 * time.Second):
		t.Fatal("first HoldLock did not take the lock")
	}
	if err := sqldb.HoldLock(context.Background(), db, "test.writer", make(chan struct{})); !errors.Is(err, sqldb.ErrLocked) {
		t.Fatalf("second HoldLock = %v, want ErrLocked", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("first HoldLock on cancel = %v, want nil", err)
	}
	// Released: a new worker can start.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	again := make(chan struct{})
	go sqldb.HoldLock(ctx2, db, "test.writer", again)
	select {
	case <-again:
	case <-time.After(10 * time.Second):
		t.Fatal("lock not free after the first holder stopped")
	}
}
