package featuregate

import (
	"context"
	"errors"
	"fmt"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/services/featuregate/serverstats"
)

// Server Statistics: the server's aggregate counts go to the connected
// account daily and when the feature starts working (the serverstats
// package does the work; a Job schedules it).

const (
	serverStatistics = featuregatev1.Feature_FEATURE_SERVER_STATISTICS
	// statsJob names the upload's lease, status row and metrics.
	statsJob = "server_statistics"
)

// NewServerStatistics makes the Server Statistics job: uploads to the
// GitHub API at githubURL as the App of the first connection, by id, on
// which the feature works (an organization's or an enterprise's).
func NewServerStatistics(store *Store, broker brokerv1.TokenBrokerServiceClient, githubURL string, opts JobOptions) (*Job, error) {
	base, err := githubBase(githubURL)
	if err != nil {
		return nil, err
	}
	app := newAppClients(broker, base, jobPermissions, time.Minute)
	return newJob(store, jobSpec{name: statsJob, feature: serverStatistics, title: "server statistics",
		work: func(ctx context.Context, conn string) (string, error) {
			acc, err := store.accountOf(ctx, conn)
			if err != nil {
				return "", err
			}
			sv := serverstats.Server{ID: conn, Hostname: acc.ServerHostname, Version: acc.Version, Features: store.view.features(conn)}
			day, r, err := serverstats.Upload(ctx, app.client(conn), store.stats, acc.Login, sv, time.Now())
			if errors.Is(err, serverstats.ErrNoReport) {
				return "nothing sent: the server has reported no statistics yet", nil
			}
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("the statistics of %s sent; GitHub.com holds %d days of this server's, the newest %s", day, r.Days, r.LastDate), nil
		}}, opts), nil
}

// features are the names of the features that work on conn, for the
// statistics' github_connect.features_enabled.
func (v *view) features(conn string) []string {
	snap := v.get(conn)
	out := []string{}
	for _, f := range catalog {
		if st, _ := featureState(snap, f.Feature); st == featuregatev1.Reason_REASON_EFFECTIVE {
			out = append(out, featureName(f.Feature))
		}
	}
	return out
}

// ReportServerStatistics implements the RPC.
func (s *Server) ReportServerStatistics(ctx context.Context, req *featuregatev1.ReportServerStatisticsRequest) (*featuregatev1.ReportServerStatisticsResponse, error) {
	day, err := s.store.stats.Report(ctx, req.GetStatistics(), s.store.now())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &featuregatev1.ReportServerStatisticsResponse{CollectionDate: day}, nil
}

// GetServerStatisticsStatus implements the RPC.
func (s *Server) GetServerStatisticsStatus(ctx context.Context, _ *featuregatev1.GetServerStatisticsStatusRequest) (*featuregatev1.GetServerStatisticsStatusResponse, error) {
	job, err := s.describeJob(ctx, statsJob, serverStatistics, nil, nil)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	_, _, at, err := s.store.stats.Latest(ctx)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	r, err := s.store.stats.Remote(ctx)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &featuregatev1.GetServerStatisticsStatusResponse{Status: &featuregatev1.ServerStatisticsStatus{Job: job,
		LastReportTime: timestamp(at), GithubDays: r.Days, GithubLastDate: r.LastDate}}, nil
}
