package featuregate

import (
	"context"
	"fmt"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/services/featuregate/licensesync"
)

// Automatic user license sync: the server's licensed users, hashed, go to
// the connected enterprise daily and when the feature starts working (the
// licensesync package does the work; a Job schedules it).

const (
	licenseSync = featuregatev1.Feature_FEATURE_LICENSE_SYNC
	// licenseJob names license sync's lease, status row and metrics.
	licenseJob = "license_sync"
)

// jobPermissions is what the scheduled uploads ask the broker for:
// GitHub Connect's upload interface takes any installation token of the
// connection's App, and metadata (read) is the least one carries.
var jobPermissions = map[string]string{"metadata": "read"}

// NewLicenseSync makes the license sync job: uploads to the GitHub API at
// githubURL as the App of the first connection, by id, to an enterprise
// on which the feature works.
func NewLicenseSync(store *Store, broker brokerv1.TokenBrokerServiceClient, githubURL string, opts JobOptions) (*Job, error) {
	base, err := githubBase(githubURL)
	if err != nil {
		return nil, err
	}
	app := newAppClients(broker, base, jobPermissions, time.Minute)
	return newJob(store, jobSpec{name: licenseJob, feature: licenseSync, title: "license sync",
		eligible: connAccount.Enterprise,
		work: func(ctx context.Context, conn string) (string, error) {
			acc, err := store.accountOf(ctx, conn)
			if err != nil {
				return "", err
			}
			sent, r, err := licensesync.Upload(ctx, app.client(conn), store.licenses, acc.Login, conn, acc.ServerHostname)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%d licensed users sent (hashed); GitHub.com counts %d of %d seats consumed", sent, r.SeatsConsumed, r.SeatsPurchased), nil
		}}, opts), nil
}

// ReportLicensedUsers implements the RPC.
func (s *Server) ReportLicensedUsers(ctx context.Context, req *featuregatev1.ReportLicensedUsersRequest) (*featuregatev1.ReportLicensedUsersResponse, error) {
	users := make([]licensesync.User, 0, len(req.GetUsers()))
	for _, u := range req.GetUsers() {
		users = append(users, licensesync.User{ID: u.GetUserId(), Emails: u.GetEmails(), Removed: u.GetRemoved()})
	}
	n, err := s.store.licenses.Report(ctx, users, s.store.now())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &featuregatev1.ReportLicensedUsersResponse{LicensedUsers: n}, nil
}

// GetLicenseSyncStatus implements the RPC.
func (s *Server) GetLicenseSyncStatus(ctx context.Context, _ *featuregatev1.GetLicenseSyncStatusRequest) (*featuregatev1.GetLicenseSyncStatusResponse, error) {
	job, err := s.describeJob(ctx, licenseJob, licenseSync, connAccount.Enterprise, func(a connAccount) string {
		return fmt.Sprintf("does not apply: the connection is to the organization %s, and GitHub.com counts a server's licensed users only in an enterprise account; connect the server to its enterprise for license sync", a.Login)
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	n, err := s.store.licenses.Count(ctx)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	r, err := s.store.licenses.Remote(ctx)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &featuregatev1.GetLicenseSyncStatusResponse{Status: &featuregatev1.LicenseSyncStatus{Job: job, LicensedUsers: n,
		SeatsConsumed: r.SeatsConsumed, SeatsPurchased: r.SeatsPurchased, GithubSyncStatus: r.SyncStatus, GithubSyncTime: timestamp(r.SyncTime)}}, nil
}

// describeJob says how a job goes, as the status RPCs answer: OFF while
// the feature works nowhere, NOT_APPLICABLE (in notApplicable's words for
// the first such connection) while it works only on connections the job
// cannot serve, else from its status row.
func (s *Server) describeJob(ctx context.Context, name string, f featuregatev1.Feature, eligible func(connAccount) bool, notApplicable func(connAccount) string) (*featuregatev1.JobStatus, error) {
	st, err := s.store.jobStatus(ctx, name)
	if err != nil {
		return nil, err
	}
	out := &featuregatev1.JobStatus{ConnectionId: st.ConnectionID, LastStartTime: timestamp(st.LastStart), LastEndTime: timestamp(st.LastEnd),
		LastSuccessTime: timestamp(st.LastSuccess), LastError: st.LastError, LastResult: st.LastResult, Failures: st.Failures, NextRunTime: timestamp(st.NextRun)}
	working := s.view.effective(f)
	served := false
	var other connAccount
	for _, id := range working {
		acc, err := s.store.accountOf(ctx, id)
		if err != nil {
			return nil, err
		}
		if eligible == nil || eligible(acc) {
			served = true
			break
		}
		if other.Login == "" {
			other = acc
		}
	}
	switch {
	case len(working) == 0 || (served && st.NextRun.IsZero() && !st.Running()):
		out.State, out.Message, out.NextRunTime = featuregatev1.JobState_JOB_STATE_OFF, "off: "+featureTitle(f)+" works on no connection, so nothing is sent", nil
	case !served:
		out.State, out.Message, out.NextRunTime = featuregatev1.JobState_JOB_STATE_NOT_APPLICABLE, notApplicable(other), nil
	case st.Running():
		out.State, out.Message = featuregatev1.JobState_JOB_STATE_RUNNING, "sending to GitHub.com now"
	case st.Failures > 0:
		out.State = featuregatev1.JobState_JOB_STATE_RETRYING
		out.Message = fmt.Sprintf("the last %d runs failed; the next try is at %s UTC", st.Failures, st.NextRun.UTC().Format(time.DateTime))
	default:
		out.State = featuregatev1.JobState_JOB_STATE_SCHEDULED
		out.Message = "sent; the next run is at " + st.NextRun.UTC().Format(time.DateTime) + " UTC"
	}
	return out, nil
}
