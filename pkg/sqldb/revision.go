package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// NextRevision hands out the next value of the one-row table
// revision_counter (id 1) that a service's migrations create. The update's
// row lock orders writers, so revisions become visible in the order they
// were handed out and a reader tailing "revision > last" never skips one
// that commits late.
func NextRevision(ctx context.Context, tx *sql.Tx) (int64, error) {
	var rev int64
	if err := tx.QueryRowContext(ctx, `UPDATE revision_counter SET revision = revision + 1 WHERE id = 1 RETURNING revision`).Scan(&rev); err != nil {
		return 0, fmt.Errorf("next revision: %w", err)
	}
	return rev, nil
}

// LockRevisions takes the lock NextRevision takes, early: a transaction
// that reads what its event's snapshot will hold takes it before the read,
// so no other writer's revision can commit between that read and this
// transaction's own revision (the snapshot would otherwise put back what
// the other writer changed). It holds until commit or rollback.
func LockRevisions(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `UPDATE revision_counter SET revision = revision WHERE id = 1`); err != nil {
		return fmt.Errorf("lock revisions: %w", err)
	}
	return nil
}

// Notifier wakes readers that tail a table when this process commits to it.
// Commits by other replicas are only seen by polling.
type Notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// Changed returns a channel closed at the next Notify. Take it before
// reading, so a commit racing with the read still wakes the reader.
func (n *Notifier) Changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// Notify wakes every reader waiting on Changed.
func (n *Notifier) Notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
	}
	n.ch = make(chan struct{})
}
