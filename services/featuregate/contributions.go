package featuregate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/apierr"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Unified contributions: the server reports its users' daily contribution
// counts (ReportContributions); the gate keeps them, and queues in its
// outbox those of users who linked a GitHub.com account and opted in, for
// the uploader to set on their GitHub.com profiles. Only the GitHub.com
// user id, the day and the count ever leave.
//
// What is queued when:
//   - a count reported for a linked, opted-in user (whatever the link's
//     status: a RECONNECT_NEEDED link's counts wait in the outbox);
//   - on opt-in of a linked user, and on linking an opted-in user: the
//     stored counts of the last contributionDays days (backfill);
//   - on opt-out or unlink of a user who was both: the user's queued counts
//     are dropped and a delete of everything sent for them is queued.
//
// Disconnecting unlinks everyone and drops the connection's outbox: its
// App can no longer be had a token for, so nothing queued could leave, and
// counts already on GitHub.com stay there. While the feature is off or
// lacks permissions, queued rows wait and new counts keep being queued
// (up to the outbox's bound); they leave when it works again.

const (
	// contributionDays is how far back counts are taken and backfilled.
	contributionDays = 365
	// DefaultOutboxMax is the outbox's default bound, in rows.
	DefaultOutboxMax = 1_000_000
)

// ErrOutboxFull refuses counts the outbox has no room for.
var ErrOutboxFull = errors.New("the unified-contributions outbox is full: GitHub.com has not taken the queued counts yet; report again later")

// ReportContributions implements the RPC.
func (s *Server) ReportContributions(ctx context.Context, req *featuregatev1.ReportContributionsRequest) (*featuregatev1.ReportContributionsResponse, error) {
	// The rules checked each count's user and number and the batch's
	// size; its days are checked against today here, and no user and day
	// may come twice.
	var v apierr.Violations
	counts := req.GetCounts()
	today := s.store.now().UTC().Truncate(24 * time.Hour)
	oldest, newest := today.AddDate(0, 0, -contributionDays), today.AddDate(0, 0, 1)
	seen := make(map[[2]string]bool, len(counts))
	for i, c := range counts {
		field := fmt.Sprintf("counts[%d]", i)
		day, err := time.Parse(time.DateOnly, c.GetDay())
		switch {
		case err != nil:
			v.Add(field+".day", "must be a date YYYY-MM-DD")
		case day.Before(oldest):
			v.Addf(field+".day", "is more than %d days ago", contributionDays)
		case day.After(newest):
			v.Add(field+".day", "is in the future")
		}
		k := [2]string{c.GetUser(), c.GetDay()}
		if seen[k] {
			v.Add(field, "repeats an earlier user and day of the batch")
		}
		seen[k] = true
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := s.store.checkRegistered(ctx, counts); err != nil {
		return nil, err
	}
	changed, queued, err := s.store.ReportContributions(ctx, req.GetConnectionId(), counts, s.outboxMax)
	if errors.Is(err, ErrOutboxFull) {
		logging.FromContext(ctx).Warn("contribution counts refused: the outbox is full", zap.String("connection_id", req.GetConnectionId()), zap.Int("counts", len(counts)))
		return nil, status.Error(codes.ResourceExhausted, err.Error())
	}
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	if queued > 0 {
		s.store.Notify()
	}
	// At most one each per count of the request (gRPC caps it at 4 MiB).
	return &featuregatev1.ReportContributionsResponse{Changed: int32(changed), Queued: int32(queued)}, nil //nolint:gosec // G115: see above
}

// nextSeqTx takes the next outbox sequence number, and with it the lock
// that orders every change touching the outbox.
func nextSeqTx(ctx context.Context, tx *sql.Tx) (int64, error) {
	var seq int64
	err := tx.QueryRowContext(ctx, `UPDATE gate_outbox_seq SET seq = seq + 1 WHERE id = 1 RETURNING seq`).Scan(&seq)
	return seq, err
}

// ReportContributions stores counts (the latest wins) and queues those
// that changed of users who are linked and opted in, the outbox holding at
// most outboxMax rows (0: no bound). All or nothing: a full outbox stores
// nothing.
func (s *Store) ReportContributions(ctx context.Context, conn string, counts []*featuregatev1.ContributionCount, outboxMax int) (changed, queued int, err error) {
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		changed, queued = 0, 0
		if _, known, err := connTx(ctx, tx, conn); err != nil {
			return err
		} else if !known {
			return ErrUnknownConnection
		}
		seq, err := nextSeqTx(ctx, tx)
		if err != nil {
			return err
		}
		facts, err := userFactsQ(ctx, tx, conn, countedUsers(counts))
		if err != nil {
			return err
		}
		for _, c := range counts {
			res, err := tx.ExecContext(ctx, `INSERT INTO gate_contributions (connection_id, user_login, day, count) VALUES ($1, $2, $3, $4)
				ON CONFLICT (connection_id, user_login, day) DO UPDATE SET count = excluded.count WHERE gate_contributions.count <> excluded.count`,
				conn, c.GetUser(), c.GetDay(), c.GetCount())
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				continue
			}
			changed++
			link := facts.links[c.GetUser()]
			if link == nil || !facts.optedIn[c.GetUser()][featuregatev1.Feature_FEATURE_UNIFIED_CONTRIBUTIONS] {
				continue
			}
			if err := queueCountTx(ctx, tx, conn, c.GetUser(), link.GithubId, c.GetDay(), c.GetCount(), seq); err != nil {
				return err
			}
			queued++
		}
		if queued == 0 {
			return nil
		}
		size, err := outboxSize(ctx, tx)
		if err != nil {
			return err
		}
		if outboxMax > 0 && size > int64(outboxMax) {
			return ErrOutboxFull
		}
		return nil
	})
	return changed, queued, err
}

// countedUsers is each user of counts, once.
func countedUsers(counts []*featuregatev1.ContributionCount) []string {
	var users []string
	seen := map[string]bool{}
	for _, c := range counts {
		if !seen[c.GetUser()] {
			seen[c.GetUser()] = true
			users = append(users, c.GetUser())
		}
	}
	return users
}

func queueCountTx(ctx context.Context, tx *sql.Tx, conn, user string, githubID int64, day string, count, seq int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO gate_outbox (connection_id, github_id, day, count, user_login, seq) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (connection_id, github_id, day) DO UPDATE SET count = excluded.count, user_login = excluded.user_login, seq = excluded.seq`,
		conn, githubID, day, count, user, seq)
	return err
}

// outboxSize counts the outbox's rows, of every connection.
func outboxSize(ctx context.Context, q queryer) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM gate_outbox`).Scan(&n)
	return n, err
}

// OutboxSize is the outbox's row count.
func (s *Store) OutboxSize(ctx context.Context) (int64, error) { return outboxSize(ctx, s.db) }

// contributionsUser is what the outbox needs to know of a user before a
// change: their link's GitHub.com id (0: none) and whether they opted in.
type contributionsUser struct {
	githubID int64
	optedIn  bool
}

func (u contributionsUser) sending() bool { return u.githubID != 0 && u.optedIn }

// contributionsUserTx reads a user's link and opt-in, after taking the
// outbox lock.
func contributionsUserTx(ctx context.Context, tx *sql.Tx, conn, user string) (contributionsUser, int64, error) {
	seq, err := nextSeqTx(ctx, tx)
	if err != nil {
		return contributionsUser{}, 0, err
	}
	var u contributionsUser
	err = tx.QueryRowContext(ctx, `SELECT github_id FROM gate_links WHERE connection_id = $1 AND user_login = $2`, conn, user).Scan(&u.githubID)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return u, 0, err
	}
	var opted int
	err = tx.QueryRowContext(ctx, `SELECT opted_in FROM gate_consents WHERE connection_id = $1 AND user_login = $2 AND feature = $3`, conn, user, int32(featuregatev1.Feature_FEATURE_UNIFIED_CONTRIBUTIONS)).Scan(&opted)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return u, 0, err
	}
	u.optedIn = opted == 1
	return u, seq, nil
}

// followUserTx brings the outbox in line with a change of a user's link or
// opt-in (before → after, read under the outbox lock): a user no longer
// sending to an account has their queued counts for it dropped and a
// delete queued; a user now sending to an account has their stored
// counts queued.
func (s *Store) followUserTx(ctx context.Context, tx *sql.Tx, conn, user string, before, after contributionsUser, seq int64) error {
	if before.sending() && (!after.sending() || after.githubID != before.githubID) {
		if _, err := tx.ExecContext(ctx, `DELETE FROM gate_outbox WHERE connection_id = $1 AND github_id = $2 AND day <> ''`, conn, before.githubID); err != nil {
			return err
		}
		if err := queueCountTx(ctx, tx, conn, user, before.githubID, "", 0, seq); err != nil {
			return err
		}
	}
	if after.sending() && (!before.sending() || after.githubID != before.githubID) {
		oldest := s.now().UTC().AddDate(0, 0, -contributionDays).Format(time.DateOnly)
		_, err := tx.ExecContext(ctx, `INSERT INTO gate_outbox (connection_id, github_id, day, count, user_login, seq)
			SELECT connection_id, $3, day, count, user_login, $4 FROM gate_contributions WHERE connection_id = $1 AND user_login = $2 AND day >= $5
			ON CONFLICT (connection_id, github_id, day) DO UPDATE SET count = excluded.count, user_login = excluded.user_login, seq = excluded.seq`,
			conn, user, after.githubID, seq, oldest)
		return err
	}
	return nil
}
