package featuregate

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// outboxRow is one thing GitHub.com must be told: set the count of
// (githubID, day), or, for day "", delete everything sent for githubID.
type outboxRow struct {
	githubID int64
	day      string
	count    int64
	seq      int64
	// user is the server login the row is of (for the status pages).
	user string
}

// queryAll runs query and scans each row with scan.
func queryAll[T any](ctx context.Context, q rowsQueryer, scan func(*sql.Rows) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// OutboxConnections lists the connections with something queued.
func (s *Store) OutboxConnections(ctx context.Context) ([]string, error) {
	return queryAll(ctx, s.db, func(rows *sql.Rows) (c string, err error) {
		err = rows.Scan(&c)
		return c, err
	}, `SELECT DISTINCT connection_id FROM gate_outbox ORDER BY connection_id`)
}

// sendable returns up to limit rows of conn that may leave now, oldest
// first: deletes always, counts only while their user's link to that
// GitHub.com account is ACTIVE (a RECONNECT_NEEDED link's wait).
func (s *Store) sendable(ctx context.Context, conn string, limit int) ([]outboxRow, error) {
	return queryAll(ctx, s.db, func(rows *sql.Rows) (r outboxRow, err error) {
		err = rows.Scan(&r.githubID, &r.day, &r.count, &r.seq, &r.user)
		return r, err
	}, fmt.Sprintf(`SELECT o.github_id, o.day, o.count, o.seq, o.user_login FROM gate_outbox o
		WHERE o.connection_id = $1 AND (o.day = '' OR EXISTS (SELECT 1 FROM gate_links l WHERE l.connection_id = o.connection_id AND l.github_id = o.github_id AND l.status = $2))
		ORDER BY o.seq, o.github_id, o.day LIMIT %d`, limit), conn, int32(activeLink))
}

// confirm removes the rows GitHub.com took (a row replaced meanwhile, a
// newer count or another seq, stays to be sent) and records, for the
// status pages, when the connection's upload and its users' counts last
// went through.
func (s *Store) confirm(ctx context.Context, conn string, sent []outboxRow) error {
	now := s.now().UnixMicro()
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		users := map[string]bool{}
		for _, r := range sent {
			if _, err := tx.ExecContext(ctx, `DELETE FROM gate_outbox WHERE connection_id = $1 AND github_id = $2 AND day = $3 AND seq = $4`, conn, r.githubID, r.day, r.seq); err != nil {
				return err
			}
			users[r.user] = users[r.user] || r.day == ""
		}
		for user, removed := range users {
			if _, err := tx.ExecContext(ctx, `INSERT INTO gate_contributions_sent (connection_id, user_login, sent_time, removed) VALUES ($1, $2, $3, $4)
				ON CONFLICT (connection_id, user_login) DO UPDATE SET sent_time = excluded.sent_time, removed = excluded.removed`,
				conn, user, now, boolInt(removed)); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO gate_contributions_uploads (connection_id, success_time) VALUES ($1, $2)
			ON CONFLICT (connection_id) DO UPDATE SET success_time = excluded.success_time`, conn, now)
		return err
	})
}

// uploadFailed records, for the status pages, that an upload of conn
// failed and why (in words).
func (s *Store) uploadFailed(ctx context.Context, conn, words string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO gate_contributions_uploads (connection_id, failure_time, last_error) VALUES ($1, $2, $3)
		ON CONFLICT (connection_id) DO UPDATE SET failure_time = excluded.failure_time, last_error = excluded.last_error`, conn, s.now().UnixMicro(), words)
	return err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// pruneContributions forgets counts older than anything still sent.
func (s *Store) pruneContributions(ctx context.Context) error {
	oldest := s.now().UTC().AddDate(0, 0, -contributionDays-1).Format(time.DateOnly)
	_, err := s.db.ExecContext(ctx, `DELETE FROM gate_contributions WHERE day < $1`, oldest)
	return err
}
