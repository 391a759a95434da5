package featuregate_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/featuregate"
)

func (e *contribEnv) status(t *testing.T, user string) *featuregatev1.GetContributionsStatusResponse {
	t.Helper()
	st, err := e.gate.GetContributionsStatus(context.Background(), &featuregatev1.GetContributionsStatusRequest{ConnectionId: e.b.ConnID, User: user})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// statusIs waits until the status of user (and the connection) holds.
func (e *contribEnv) statusIs(t *testing.T, user, what string, cond func(*featuregatev1.GetContributionsStatusResponse) bool) {
	t.Helper()
	testenv.EventuallyErr(t, contribWait, what, func() error {
		if st := e.status(t, user); !cond(st) {
			return errors.New(st.String())
		}
		return nil
	})
}

const (
	stateOK          = featuregatev1.ContributionsState_CONTRIBUTIONS_STATE_OK
	stateFeatureOff  = featuregatev1.ContributionsState_CONTRIBUTIONS_STATE_FEATURE_OFF
	stateReconnect   = featuregatev1.ContributionsState_CONTRIBUTIONS_STATE_RECONNECT_NEEDED
	stateUnavailable = featuregatev1.ContributionsState_CONTRIBUTIONS_STATE_GITHUB_UNAVAILABLE
)

// TestContributionsStatus: the status says, per user and per connection,
// what was sent when, what waits and why, in every replica's database.
func TestContributionsStatus(t *testing.T) {
	t.Parallel()
	featuregate.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := startContributions(t, dsn, 1)
		st := e.status(t, "mona")
		if st.User.OptedIn || st.User.Linked || st.User.LastSentTime != nil || st.User.State != stateOK || st.Connection.OptedInUsers != 0 || st.Connection.LastSuccessTime != nil {
			t.Fatalf("before anything: %v", st)
		}
		if !strings.Contains(st.User.Sent, "Daily contribution counts only") || strings.Join(st.User.SentFields, ",") != "user_id,date,count" {
			t.Errorf("what is sent: %q %v", st.User.Sent, st.User.SentFields)
		}
		e.sending(t, "mona", "mona-cloud")
		e.report(t, count("mona", 0, 3), count("mona", 1, 4))
		e.profileIs(t, "mona-cloud", map[string]int64{day(0): 3, day(1): 4})
		e.statusIs(t, "mona", "sent", func(st *featuregatev1.GetContributionsStatusResponse) bool {
			u, c := st.User, st.Connection
			return u.OptedIn && u.Linked && u.LastSentTime != nil && !u.LastSentRemoval && u.WaitingDays == 0 && u.State == stateOK &&
				c.OptedInUsers == 1 && c.LastSuccessTime != nil && c.OutboxRows == 0 && c.State == stateOK && c.LastError == ""
		})
		// Off: the count waits, and the status says why.
		e.setFeature(t, false)
		e.report(t, count("mona", 0, 5))
		st = e.status(t, "mona")
		if st.User.WaitingDays != 1 || st.User.State != stateFeatureOff || st.Connection.OutboxRows != 1 || st.Connection.State != stateFeatureOff || !strings.Contains(st.User.Message, "turned off") {
			t.Errorf("while off: %v", st)
		}
		// GitHub.com fails, then answers: the failure is kept in words.
		e.b.Emu.SetFaults(ghemu.Faults{ServerErrors: 2})
		e.setFeature(t, true)
		e.profileIs(t, "mona-cloud", map[string]int64{day(0): 5, day(1): 4})
		e.statusIs(t, "mona", "recovered, the failure kept", func(st *featuregatev1.GetContributionsStatusResponse) bool {
			c := st.Connection
			return c.State == stateOK && c.LastFailureTime != nil && strings.Contains(c.LastError, "GitHub.com is unavailable (HTTP 502)") &&
				c.LastSuccessTime.AsTime().After(c.LastFailureTime.AsTime()) && st.User.State == stateOK
		})
		// A link to reconnect holds counts back.
		if err := featuregate.MarkLinkBroken(context.Background(), e.stores[0], e.b.ConnID, "mona"); err != nil {
			t.Fatal(err)
		}
		e.report(t, count("mona", 0, 6))
		if st := e.status(t, "mona"); st.User.State != stateReconnect || st.User.WaitingDays != 1 {
			t.Errorf("a link to reconnect: %v", st.User)
		}
		linkAccount(t, e.gate, e.b.ConnID, "mona", "mona-cloud")
		// Opting out removes what was sent, and says so.
		e.consent(t, "mona", false)
		e.profileIs(t, "mona-cloud", map[string]int64{})
		e.statusIs(t, "mona", "removed", func(st *featuregatev1.GetContributionsStatusResponse) bool {
			u := st.User
			return !u.OptedIn && u.LastSentRemoval && !u.RemovalWaiting && u.State == stateOK && strings.Contains(u.Message, "removed") && st.Connection.OptedInUsers == 0
		})
	})
}

// TestContributionsWaitWords: what waits waits for the feature first,
// then for GitHub.com while its last upload failed; otherwise it is on
// its way.
func TestContributionsWaitWords(t *testing.T) {
	t.Parallel()
	effective := featuregatev1.Reason_REASON_EFFECTIVE
	for _, c := range []struct {
		reason           featuregatev1.Reason
		success, failure int64
		want             featuregatev1.ContributionsState
		words            string
	}{
		{featuregatev1.Reason_REASON_DISABLED, 0, 5, stateFeatureOff, "turned off"},
		{featuregatev1.Reason_REASON_NOT_CONNECTED, 0, 0, stateFeatureOff, "not connected"},
		{featuregatev1.Reason_REASON_MISSING_PERMISSIONS, 0, 0, stateFeatureOff, "lacks a permission"},
		{effective, 1, 5, stateUnavailable, "the last upload failed: GitHub.com is unavailable (HTTP 502)"},
		{effective, 5, 1, featuregatev1.ContributionsState_CONTRIBUTIONS_STATE_SENDING, "On its way"},
	} {
		got, words := featuregate.WaitState(c.reason, c.success, c.failure, "GitHub.com is unavailable (HTTP 502)")
		if got != c.want || !strings.Contains(words, c.words) {
			t.Errorf("%v, success %d, failure %d: %v %q, want %v %q", c.reason, c.success, c.failure, got, words, c.want, c.words)
		}
	}
}
