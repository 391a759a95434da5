package featuregate

import (
	"context"
	"database/sql"
	"errors"
	"time"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The status of unified contributions, as the admin page and a person's
// own page show it. The gate says what the facts mean (a state and words),
// so the pages only render them.

// sentWords and sentFields say what leaves the server for a user: the
// uploader's contributionJSON, nothing else.
const sentWords = "Daily contribution counts only: your GitHub.com user id, the day and how many contributions you made that day. Never their content, repository names or anything else."

var sentFields = []string{"user_id", "date", "count"}

// uploadsRecord is what the uploader recorded of a connection.
type uploadsRecord struct {
	success, failure int64
	lastError        string
}

// userSent is what GitHub.com last took for a user, and what waits.
type userSent struct {
	sentTime    int64
	removed     bool
	waitingDays int32
	removalWait bool
}

// microsTime is Unix microseconds in the API, nil for 0.
func microsTime(us int64) *timestamppb.Timestamp {
	if us == 0 {
		return nil
	}
	return timestamp(time.UnixMicro(us))
}

// timestamp is t in the API, nil for the zero time.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// uploadsOf reads what the uploader recorded of conn (zero if nothing).
func (s *Store) uploadsOf(ctx context.Context, conn string) (uploadsRecord, error) {
	var r uploadsRecord
	err := s.db.QueryRowContext(ctx, `SELECT success_time, failure_time, last_error FROM gate_contributions_uploads WHERE connection_id = $1`, conn).
		Scan(&r.success, &r.failure, &r.lastError)
	if errors.Is(err, sql.ErrNoRows) {
		err = nil
	}
	return r, err
}

// connectionContributions reads a connection's counters.
func (s *Store) connectionContributions(ctx context.Context, conn string) (optedIn int32, outbox int64, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM gate_consents WHERE connection_id = $1 AND feature = $2 AND opted_in = 1`,
		conn, int32(featuregatev1.Feature_FEATURE_UNIFIED_CONTRIBUTIONS)).Scan(&optedIn)
	if err != nil {
		return 0, 0, err
	}
	err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM gate_outbox WHERE connection_id = $1`, conn).Scan(&outbox)
	return optedIn, outbox, err
}

// userContributions reads what was sent for a user and what waits.
func (s *Store) userContributions(ctx context.Context, conn, user string) (userSent, error) {
	var u userSent
	var removed int
	err := s.db.QueryRowContext(ctx, `SELECT sent_time, removed FROM gate_contributions_sent WHERE connection_id = $1 AND user_login = $2`, conn, user).Scan(&u.sentTime, &removed)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return u, err
	}
	u.removed = removed == 1
	var removals int
	err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) - COUNT(NULLIF(day, '')), COUNT(NULLIF(day, '')) FROM gate_outbox WHERE connection_id = $1 AND user_login = $2`, conn, user).
		Scan(&removals, &u.waitingDays)
	u.removalWait = removals > 0
	return u, err
}

// waitState says why what waits waits: the feature not working, the
// last upload having failed, or nothing (it is on its way).
func waitState(reason featuregatev1.Reason, up uploadsRecord) (featuregatev1.ContributionsState, string) {
	switch reason {
	case featuregatev1.Reason_REASON_EFFECTIVE:
	case featuregatev1.Reason_REASON_NOT_CONNECTED:
		return featuregatev1.ContributionsState_CONTRIBUTIONS_STATE_FEATURE_OFF, "Waiting: this server is not connected to GitHub.com."
	case featuregatev1.Reason_REASON_MISSING_PERMISSIONS:
		return featuregatev1.ContributionsState_CONTRIBUTIONS_STATE_FEATURE_OFF, "Waiting: the connection's GitHub App lacks a permission unified contributions needs."
	default:
		return featuregatev1.ContributionsState_CONTRIBUTIONS_STATE_FEATURE_OFF, "Waiting: unified contributions is turned off for this server."
	}
	if up.failure > up.success {
		return featuregatev1.ContributionsState_CONTRIBUTIONS_STATE_GITHUB_UNAVAILABLE, "Waiting: the last upload failed: " + up.lastError + "."
	}
	return featuregatev1.ContributionsState_CONTRIBUTIONS_STATE_SENDING, "On its way to GitHub.com."
}

// GetContributionsStatus implements the RPC.
func (s *Server) GetContributionsStatus(ctx context.Context, req *featuregatev1.GetContributionsStatusRequest) (*featuregatev1.GetContributionsStatusResponse, error) {
	_, self := selfOnly(ctx)
	if self && req.GetUser() == "" {
		return nil, status.Error(codes.PermissionDenied, "a person acting for themselves may ask only for their own status: name the user")
	}
	if err := forSelf(ctx, req.GetUser()); err != nil {
		return nil, err
	}
	conn := req.GetConnectionId()
	reason, _ := featureState(s.view.get(conn), featuregatev1.Feature_FEATURE_UNIFIED_CONTRIBUTIONS)
	up, err := s.store.uploadsOf(ctx, conn)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	out := &featuregatev1.GetContributionsStatusResponse{}
	if !self {
		c := &featuregatev1.ConnectionContributionsStatus{LastSuccessTime: microsTime(up.success), LastFailureTime: microsTime(up.failure), LastError: up.lastError,
			LastUploadTime: microsTime(max(up.success, up.failure)), LastUploadOk: up.success > up.failure}
		if c.OptedInUsers, c.OutboxRows, err = s.store.connectionContributions(ctx, conn); err != nil {
			return nil, toStatus(ctx, err)
		}
		c.State, c.Message = featuregatev1.ContributionsState_CONTRIBUTIONS_STATE_OK, "Nothing waits: GitHub.com has every count reported."
		if c.OutboxRows > 0 {
			c.State, c.Message = waitState(reason, up)
		}
		out.Connection = c
	}
	if req.GetUser() != "" {
		if out.User, err = s.userStatus(ctx, conn, req.GetUser(), reason, up); err != nil {
			return nil, toStatus(ctx, err)
		}
	}
	return out, nil
}

// userStatus is a user's part of GetContributionsStatus.
func (s *Server) userStatus(ctx context.Context, conn, user string, reason featuregatev1.Reason, up uploadsRecord) (*featuregatev1.UserContributionsStatus, error) {
	facts, err := s.store.userFactsOf(ctx, conn, []string{user})
	if err != nil {
		return nil, err
	}
	sent, err := s.store.userContributions(ctx, conn, user)
	if err != nil {
		return nil, err
	}
	link := facts.links[user]
	u := &featuregatev1.UserContributionsStatus{
		User: user, OptedIn: facts.optedIn[user][featuregatev1.Feature_FEATURE_UNIFIED_CONTRIBUTIONS], Linked: link != nil,
		Sent: sentWords, SentFields: sentFields,
		LastSentTime: microsTime(sent.sentTime), LastSentRemoval: sent.removed,
		WaitingDays: sent.waitingDays, RemovalWaiting: sent.removalWait,
	}
	switch {
	case sent.waitingDays == 0 && !sent.removalWait:
		u.State, u.Message = featuregatev1.ContributionsState_CONTRIBUTIONS_STATE_OK, okWords(u)
	case !sent.removalWait && link != nil && link.Status == featuregatev1.LinkStatus_LINK_STATUS_RECONNECT_NEEDED && reason == featuregatev1.Reason_REASON_EFFECTIVE:
		u.State, u.Message = featuregatev1.ContributionsState_CONTRIBUTIONS_STATE_RECONNECT_NEEDED, "Waiting: connect your GitHub.com account again; your counts are sent once you do."
	default:
		u.State, u.Message = waitState(reason, up)
	}
	return u, nil
}

// okWords says a user's state when nothing of theirs waits.
func okWords(u *featuregatev1.UserContributionsStatus) string {
	switch {
	case u.LastSentRemoval:
		return "Removed: what was sent has been removed from your GitHub.com profile."
	case u.OptedIn && u.Linked && u.LastSentTime != nil:
		return "Up to date: GitHub.com has your counts."
	case u.OptedIn && u.Linked:
		return "Nothing sent yet: no contributions have been counted for you."
	case u.OptedIn:
		return "Connect your GitHub.com account for your counts to be sent."
	}
	return "Not sending: you have not opted in."
}
