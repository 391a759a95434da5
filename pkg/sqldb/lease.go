package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"hash/fnv"
	"math"
	"sync"
	"time"

	"github.com/ghconnect/ghconnect/pkg/logging"
	"go.uber.org/zap"
)

// leaseClass is the first half of the two-int advisory-lock keys of
// leases (the second is a hash of the lease's name). Two-int keys live
// apart from one-bigint keys such as the migration lock's.
const leaseClass = 727471

// Lease elects one leader among the processes sharing a database, for work
// that must not run in several replicas at once (a reconciler, a follower
// that writes history).
//
// On PostgreSQL the leader holds a session-level advisory lock
// (pg_try_advisory_lock) on a connection of its own, taken out of the pool.
// PostgreSQL releases the lock when that session ends: when the process
// exits or is killed (the kernel closes its socket at once), when the
// backend is terminated, or when PostgreSQL notices the peer is gone. For
// the last case (a host that vanished without closing its socket) the
// lease's session sets TCP keepalives (tcp_keepalives_idle/interval/count)
// so the server gives up on a dead peer after about 2×Retry+3 s, later than
// the holder itself stops, which is within 2×Retry (a check every Retry/2,
// each given at most Retry). No idle_session_timeout or
// statement_timeout is involved: the session is idle between checks by
// design.
//
// The holder checks its connection every Retry/2 with SELECT 1; when the
// check fails it stops acting as leader (the work's context is cancelled
// and waited for) before it tries to take the lock again. A lock released
// by PostgreSQL is visible to the others at once, so for up to Retry/2 an
// old holder may still be finishing work while a new one starts: the leased
// work must stay safe to run twice (the registry's steps are idempotent and
// guarded by the record's state); the lease keeps it from running
// everywhere all the time.
//
// The others try again every Retry, and so does a leader that lost its
// session (it tries after Retry, not at once, so a healthy replica gets
// the lock first). On SQLite (one process by nature) the
// lease is always held.
type Lease struct {
	db   *DB
	name string
	key  int32
	// Retry is how often a replica that is not the leader tries again;
	// the leader checks its lock twice as often. 0 means 5 s.
	Retry time.Duration
	// OnChange, when set, is called with true when this process becomes
	// the leader and with false when it stops being it.
	OnChange func(leader bool)

	mu   sync.Mutex
	held bool
}

// Lease returns the lease called name on db; Run takes part in the
// election.
func (db *DB) Lease(name string) *Lease {
	h := fnv.New32a()
	h.Write([]byte(name))
	return &Lease{db: db, name: name, key: int32(h.Sum32() & math.MaxInt32)}
}

// LeaseHolders returns the PostgreSQL backends (pids) that hold a lease of
// this database now, for tests and diagnostics that need to see or end a
// leader's session. On SQLite, where one process is always the leader, it
// returns none.
func (db *DB) LeaseHolders(ctx context.Context) ([]int, error) {
	if db.Dialect != Postgres {
		return nil, nil
	}
	// A two-int advisory key is classid, objid, with objsubid 2.
	rows, err := db.QueryContext(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objsubid = 2 AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, leaseClass)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var pids []int
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			return nil, err
		}
		pids = append(pids, pid)
	}
	return pids, rows.Err()
}

// Name is the lease's name.
func (l *Lease) Name() string { return l.name }

// Held reports whether this process is the leader now.
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held
}

func (l *Lease) retry() time.Duration {
	if l.Retry > 0 {
		return l.Retry
	}
	return 5 * time.Second
}

func (l *Lease) set(ctx context.Context, held bool) {
	l.mu.Lock()
	changed := l.held != held
	l.held = held
	l.mu.Unlock()
	if !changed {
		return
	}
	log := logging.FromContext(ctx).With(zap.String("lease", l.name))
	if held {
		log.Info("became the leader")
	} else {
		log.Info("no longer the leader")
	}
	if l.OnChange != nil {
		l.OnChange(held)
	}
}

// GaugeOnChange is an OnChange that sets g to 1 while this process is
// the leader and to 0 otherwise (g is a prometheus.Gauge, say).
func GaugeOnChange(g interface{ Set(float64) }) func(leader bool) {
	return func(leader bool) {
		if leader {
			g.Set(1)
		} else {
			g.Set(0)
		}
	}
}

// Run takes part in the election until ctx ends. While this process is the
// leader, work runs with a context that is cancelled when the leadership
// is lost (or ctx ends); Run waits for work to return before it tries to
// lead again. work should run until its context ends: if it returns
// earlier, the lease is kept (no one else does the work) until ctx ends or
// the lock is lost.
func (l *Lease) Run(ctx context.Context, work func(ctx context.Context)) {
	if l.db.Dialect != Postgres {
		l.set(ctx, true)
		work(ctx)
		<-ctx.Done()
		l.set(ctx, false)
		return
	}
	log := logging.FromContext(ctx).With(zap.String("lease", l.name))
	for {
		conn, err := l.acquire(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("trying to take the lease", zap.Error(err))
		}
		if conn != nil {
			l.lead(ctx, conn, work)
		}
		// Not the leader, or no longer: a leader that lost its session
		// waits like the others, so a healthy replica gets the lock first.
		select {
		case <-ctx.Done():
			return
		case <-time.After(l.retry()):
		}
	}
}

// acquire returns a connection holding the lock, or nil when another
// session holds it.
func (l *Lease) acquire(ctx context.Context) (*sql.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, l.retry())
	defer cancel()
	conn, err := l.db.Conn(cctx)
	if err != nil {
		return nil, err
	}
	var ok bool
	if err := conn.QueryRowContext(cctx, `SELECT pg_try_advisory_lock($1::int4, $2::int4)`, leaseClass, l.key).Scan(&ok); err != nil {
		discard(conn)
		return nil, err
	}
	if !ok {
		// Holds nothing: back to the pool (Close fails only on a conn closed
		// already).
		_ = conn.Close()
		return nil, nil
	}
	// The server's view of a dead peer: probes after idle seconds without
	// traffic, count probes interval seconds apart (Linux; ignored on Unix
	// sockets). The checks keep the session busy while the holder lives.
	idle := int(math.Ceil((2 * l.retry()).Seconds()))
	for _, set := range []string{
		fmt.Sprintf(`SET tcp_keepalives_idle = %d`, idle),
		`SET tcp_keepalives_interval = 1`,
		`SET tcp_keepalives_count = 3`,
	} {
		if _, err := conn.ExecContext(cctx, set); err != nil {
			discard(conn)
			return nil, fmt.Errorf("%s: %w", set, err)
		}
	}
	return conn, nil
}

// lead runs work while conn keeps the lock, then gives the lock up.
func (l *Lease) lead(ctx context.Context, conn *sql.Conn, work func(context.Context)) {
	log := logging.FromContext(ctx).With(zap.String("lease", l.name))
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	l.set(ctx, true)
	go func() { defer close(done); work(wctx) }()
	check := time.NewTicker(l.retry() / 2)
	defer check.Stop()
	lost := false
	for !lost && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-check.C:
			cctx, cancel := context.WithTimeout(ctx, l.retry())
			var one int
			err := conn.QueryRowContext(cctx, `SELECT 1`).Scan(&one)
			cancel()
			if err != nil && ctx.Err() == nil {
				log.Warn("the lease's database session is lost", zap.Error(err))
				lost = true
			}
		}
	}
	// Stop acting as the leader before anything else.
	stop()
	<-done
	l.set(ctx, false)
	if lost {
		discard(conn)
		return
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var released bool
	if err := conn.QueryRowContext(uctx, `SELECT pg_advisory_unlock($1::int4, $2::int4)`, leaseClass, l.key).Scan(&released); err != nil || !released {
		discard(conn)
		return
	}
	_ = conn.Close() // unlocked: back to the pool, as above
}

// discard closes conn's session instead of returning it to the pool, so a
// lock it may still hold cannot outlive the lease.
func discard(conn *sql.Conn) {
	// Raw returns the ErrBadConn it is given: that marks the session bad,
	// and Close then ends it rather than pooling it. Neither has an error
	// worth more than that.
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}
