package worker

import (
	"context"
	"errors"
	"testing"
	"time"

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
	go func() { done <- HoldWriterLock(ctx, db, first) }()
	select {
	case <-first:
	case err := <-done:
		t.Fatalf("first HoldWriterLock = %v, want it to hold the lock", err)
	case <-time.After(10 * time.Second):
		t.Fatal("first HoldWriterLock did not take the lock")
	}
	if err := HoldWriterLock(context.Background(), db, make(chan struct{})); !errors.Is(err, ErrLocked) {
		t.Fatalf("second HoldWriterLock = %v, want ErrLocked", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("first HoldWriterLock on cancel = %v, want nil", err)
	}
	// Released: a new worker can start.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	again := make(chan struct{})
	go HoldWriterLock(ctx2, db, again)
	select {
	case <-again:
	case <-time.After(10 * time.Second):
		t.Fatal("lock not free after the first holder stopped")
	}
}
