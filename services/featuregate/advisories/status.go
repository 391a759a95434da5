package advisories

import (
	"context"
	"fmt"
	"time"
)

// SyncStatus is how the sync last went and when it runs next: what the
// status pages show. Every replica reads it; the one that syncs writes it.
type SyncStatus struct {
	// ConnectionID is the connection whose App made the last run.
	ConnectionID string
	// LastStart and LastEnd bound the last run (zero: none yet; LastEnd
	// before LastStart: one is running).
	LastStart, LastEnd time.Time
	// LastSuccess is when a run last completed.
	LastSuccess time.Time
	// LastError says why the last run failed or stopped, in words for an
	// admin; empty after a success.
	LastError string
	// Fetched and Changed are the last run's counts: advisories GitHub.com
	// sent, and those new or newer to the store.
	Fetched, Changed int64
	// Failures counts the runs that failed in a row.
	Failures int32
	// NextRun is when the next run is due; zero while the sync is off.
	NextRun time.Time
}

// Running says whether a run has started and not ended.
func (s SyncStatus) Running() bool { return !s.LastStart.IsZero() && s.LastEnd.Before(s.LastStart) }

// SyncStatus reads the sync's status.
func (s *Store) SyncStatus(ctx context.Context) (SyncStatus, error) {
	var st SyncStatus
	var start, end, success, next int64
	err := s.db.QueryRowContext(ctx, `SELECT connection_id, last_start, last_end, last_success, last_error, fetched, changed, failures, next_run
		FROM advisory_sync_status WHERE id = 1`).Scan(&st.ConnectionID, &start, &end, &success, &st.LastError, &st.Fetched, &st.Changed, &st.Failures, &next)
	if err != nil {
		return SyncStatus{}, fmt.Errorf("advisories: sync status: %w", err)
	}
	st.LastStart, st.LastEnd, st.LastSuccess, st.NextRun = fromMicros(start), fromMicros(end), fromMicros(success), fromMicros(next)
	return st, nil
}

// SaveSyncStatus records the sync's status.
func (s *Store) SaveSyncStatus(ctx context.Context, st SyncStatus) error {
	_, err := s.db.ExecContext(ctx, `UPDATE advisory_sync_status SET connection_id = $1, last_start = $2, last_end = $3, last_success = $4,
		last_error = $5, fetched = $6, changed = $7, failures = $8, next_run = $9 WHERE id = 1`,
		st.ConnectionID, toMicros(st.LastStart), toMicros(st.LastEnd), toMicros(st.LastSuccess), st.LastError, st.Fetched, st.Changed, st.Failures, toMicros(st.NextRun))
	if err != nil {
		return fmt.Errorf("advisories: saving the sync status: %w", err)
	}
	return nil
}

// Count is how many advisories the store holds, withdrawn ones too.
func (s *Store) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM advisories`).Scan(&n); err != nil {
		return 0, fmt.Errorf("advisories: count: %w", err)
	}
	return n, nil
}
