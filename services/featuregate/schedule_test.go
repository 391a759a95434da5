package featuregate

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/testenv"
)

// A scheduled task whose run is cut short because ctx ended (the gate
// stopping, or the lease passing to another replica) is due again at
// once, as the next replica to hold the lease should find it; schedule
// itself then returns rather than run it again, and again, on an ended
// ctx. (It did not: the leader that lost its lease spun, starting a
// watcher goroutine a run, until the process ended.)
func TestScheduleEndsWithItsContext(t *testing.T) {
	store, err := OpenStore(context.Background(), testenv.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	type status struct{ next time.Time }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var runs, saves atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		schedule(ctx, store, time.Hour, status{}, func(s *status) *time.Time { return &s.next },
			func() string { return "conn" },
			func(status) { saves.Add(1) },
			func(string, status) status {
				runs.Add(1)
				cancel() // ctx ends while the task runs
				return status{next: time.Now()}
			})
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cancel()
		t.Fatalf("schedule still running 5 s after its context ended: %d runs, %d saves", runs.Load(), saves.Load())
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
	if n := saves.Load(); n != 1 {
		t.Errorf("%d saves, want 1: the interrupted run's status", n)
	}
}
