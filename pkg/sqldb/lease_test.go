package sqldb_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/pkg/testenv"
)

const leaseRetry = 300 * time.Millisecond

// replica is one process's side of an election: its own pool on the
// database, its lease, and what its leased work saw.
type replica struct {
	db     *sqldb.DB
	lease  *sqldb.Lease
	cancel context.CancelFunc
	done   chan struct{}
	// runs counts the times work started; running is 1 while it runs.
	runs, running atomic.Int32
	mu            sync.Mutex
	stopped       []time.Time // when each run of work saw its context end
}

func startReplica(t *testing.T, dsn, name string) *replica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	db, err := sqldb.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{db: db, lease: db.Lease(name), cancel: cancel, done: make(chan struct{})}
	r.lease.Retry = leaseRetry
	go func() {
		defer close(r.done)
		r.lease.Run(ctx, func(ctx context.Context) {
			r.runs.Add(1)
			r.running.Store(1)
			<-ctx.Done()
			r.mu.Lock()
			r.stopped = append(r.stopped, time.Now())
			r.mu.Unlock()
			r.running.Store(0)
		})
	}()
	t.Cleanup(func() { r.stop(); db.Close() })
	return r
}

func (r *replica) stop() {
	r.cancel()
	<-r.done
}

// leaders counts the replicas that hold the lease and run the work.
func leaders(rs ...*replica) int {
	n := 0
	for _, r := range rs {
		if r.lease.Held() && r.running.Load() == 1 {
			n++
		}
	}
	return n
}

// Two replicas on one PostgreSQL database: exactly one leads, for as long
// as it lives; another lease name is a separate election.
func TestLeaseOneLeaderOnPostgres(t *testing.T) {
	dsn := testenv.Postgres(t)
	a := startReplica(t, dsn, "reconciler")
	b := startReplica(t, dsn, "reconciler")
	testenv.Eventually(t, 5*time.Second, "a leader", func() bool { return leaders(a, b) == 1 })
	// Not a wait: one leader at every look over several retries (the sleep
	// paces the looks).
	for end := time.Now().Add(4 * leaseRetry); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if n := leaders(a, b); n != 1 {
			t.Fatalf("%d leaders", n)
		}
	}
	if a.runs.Load()+b.runs.Load() != 1 {
		t.Errorf("work started %d+%d times, want once", a.runs.Load(), b.runs.Load())
	}
	// A lease of another name is a separate election.
	other := startReplica(t, dsn, "key-follower")
	testenv.Eventually(t, 5*time.Second, "the other lease's leader", func() bool { return leaders(other) == 1 })
	if leaders(a, b) != 1 {
		t.Errorf("the second lease disturbed the first")
	}
}

// holderPID is the backend holding a lease's advisory lock.
func holderPID(t *testing.T, db *sqldb.DB) int {
	t.Helper()
	pids, err := db.LeaseHolders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 1 {
		t.Fatalf("lease lock holders: %v", pids)
	}
	return pids[0]
}

// The leader's session is terminated by PostgreSQL (as when its process is
// killed): it stops acting as the leader at its next check, and the other
// replica takes over within its retry period.
func TestLeaseTakeoverWhenTheSessionDies(t *testing.T) {
	dsn := testenv.Postgres(t)
	a := startReplica(t, dsn, "reconciler")
	testenv.Eventually(t, 5*time.Second, "a leads", func() bool { return leaders(a) == 1 })
	b := startReplica(t, dsn, "reconciler")
	time.Sleep(2 * leaseRetry) // a negative check: no takeover within two retries
	if leaders(b) != 0 || leaders(a) != 1 {
		t.Fatalf("b took the lease from a living leader")
	}
	pid := holderPID(t, a.db)
	killed := time.Now()
	var ok bool
	if err := b.db.QueryRow(`SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d): %v %v", pid, ok, err)
	}
	took := testenv.Eventually(t, leaseRetry+time.Second, "b leads", func() bool { return leaders(b) == 1 })
	testenv.Eventually(t, leaseRetry+time.Second, "a stops acting as the leader", func() bool { return a.running.Load() == 0 && !a.lease.Held() })
	a.mu.Lock()
	stoppedAfter := a.stopped[0].Sub(killed)
	a.mu.Unlock()
	t.Logf("after the backend was terminated: b leads after %v, a stopped after %v", took, stoppedAfter)
	if stoppedAfter > leaseRetry/2+time.Second {
		t.Errorf("a went on leading for %v", stoppedAfter)
	}
	// a tries again and again, but b keeps the lease.
	time.Sleep(3 * leaseRetry) // a negative check: a keeps failing to take the lease
	if leaders(a, b) != 1 || leaders(b) != 1 || a.runs.Load() != 1 {
		t.Errorf("after the takeover: a held %v (runs %d), b held %v", a.lease.Held(), a.runs.Load(), b.lease.Held())
	}
	if holderPID(t, b.db) == pid {
		t.Errorf("the terminated backend still holds the lock")
	}
}

// The leader stops (its context ends): it lets go, and the other replica
// takes over within its retry period.
func TestLeaseTakeoverWhenTheLeaderStops(t *testing.T) {
	dsn := testenv.Postgres(t)
	a := startReplica(t, dsn, "reconciler")
	testenv.Eventually(t, 5*time.Second, "a leads", func() bool { return leaders(a) == 1 })
	b := startReplica(t, dsn, "reconciler")
	time.Sleep(2 * leaseRetry) // a negative check: no takeover within two retries
	if leaders(b) != 0 {
		t.Fatal("b leads while a lives")
	}
	a.stop()
	if a.lease.Held() || a.running.Load() != 0 {
		t.Fatal("a still leads after Run returned")
	}
	took := testenv.Eventually(t, leaseRetry+time.Second, "b leads", func() bool { return leaders(b) == 1 })
	t.Logf("b leads %v after a stopped", took)
	// a gave the lock back, its pooled connections hold nothing.
	if pid := holderPID(t, b.db); pid == 0 {
		t.Fatal("no holder")
	}
}

// SQLite is one process's database: the lease is always held.
func TestLeaseAlwaysHeldOnSQLite(t *testing.T) {
	dsn := testenv.SQLite(t)
	a := startReplica(t, dsn, "reconciler")
	b := startReplica(t, dsn, "reconciler")
	testenv.Eventually(t, time.Second, "both lead", func() bool { return leaders(a, b) == 2 })
	a.stop()
	if a.lease.Held() {
		t.Error("held after Run returned")
	}
}
