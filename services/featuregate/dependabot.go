package featuregate

import (
	"context"
	"errors"
	"fmt"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/apierr"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/services/broker/brokerclient"
	"github.com/ghconnect/ghconnect/services/featuregate/advisories"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

const (
	dependabot = featuregatev1.Feature_FEATURE_DEPENDABOT_ALERTS
	// leaseAdvisories is the lease of the one replica that syncs.
	leaseAdvisories = "featuregate-advisories-sync"
)

// advisoryPermissions is what the sync asks the broker for. GitHub.com's
// global advisories are public: the token needs no permission of its
// own, and metadata (read) is the least an installation token carries.
// The catalog's vulnerability_alerts is what Dependabot needs of the App
// for the alerts themselves, not for this download.
var advisoryPermissions = map[string]string{"metadata": "read"}

// AdvisorySyncOptions configure the advisory sync; zero values take the
// defaults.
type AdvisorySyncOptions struct {
	// Every is the time between runs that succeeded; default 1 h. A run
	// also starts at once when Dependabot alerts start working (turned
	// on, or the connection CONNECTED again).
	Every time.Duration
	// Poll is how often the sync looks at the feature's state besides
	// this replica's own commits (another replica's switch); default 5 s.
	// A run stops within it once the feature stops working.
	Poll time.Duration
	// MinBackoff and MaxBackoff bound the wait after a run failed; the
	// wait doubles from the one to the other. Defaults 30 s and 30 min.
	// A rate limit waits as long as GitHub.com says instead, if longer.
	MinBackoff, MaxBackoff time.Duration
	// LeaseRetry is how often a replica that does not sync tries to take
	// over (sqldb.Lease.Retry); default 5 s.
	LeaseRetry time.Duration
	// PerPage is the page size asked of GitHub.com (0: 100, its most).
	PerPage int
	// Registerer takes the sync's metrics (nil: none).
	Registerer prometheus.Registerer
}

// AdvisorySync keeps the advisories in step with GitHub.com while
// Dependabot alerts work on a connection: a full sync first, then
// incremental ones, in one replica at a time, as the App of the first
// such connection (by id) with a token from the broker. It stops when the
// feature stops working, and records every run for the status pages.
type AdvisorySync struct {
	store *Store
	app   *appClients
	opts  AdvisorySyncOptions

	leader      prometheus.Gauge
	runs        *prometheus.CounterVec
	fetched     prometheus.Counter
	changed     prometheus.Counter
	lastSuccess prometheus.Gauge
}

// NewAdvisorySync syncs from the GitHub API at githubURL.
func NewAdvisorySync(store *Store, broker brokerv1.TokenBrokerServiceClient, githubURL string, opts AdvisorySyncOptions) (*AdvisorySync, error) {
	base, err := githubBase(githubURL)
	if err != nil {
		return nil, err
	}
	if opts.Every <= 0 {
		opts.Every = time.Hour
	}
	if opts.Poll <= 0 {
		opts.Poll = 5 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 30 * time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(30*time.Minute, opts.MinBackoff)
	}
	a := &AdvisorySync{store: store, app: newAppClients(broker, base, advisoryPermissions, time.Minute), opts: opts,
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ghconnect_featuregate_advisories_sync_leader",
			Help: "1 while this replica holds the lease of the Dependabot advisory sync."}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ghconnect_featuregate_advisories_sync_runs_total",
			Help: "Runs of the Dependabot advisory sync, by result (ok, failed, stopped: the feature stopped working)."}, []string{"result"}),
		fetched: prometheus.NewCounter(prometheus.CounterOpts{Name: "ghconnect_featuregate_advisories_fetched_total",
			Help: "Advisories GitHub.com sent to the Dependabot advisory sync."}),
		changed: prometheus.NewCounter(prometheus.CounterOpts{Name: "ghconnect_featuregate_advisories_changed_total",
			Help: "Advisories the sync stored as new or changed."}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ghconnect_featuregate_advisories_sync_last_success_seconds",
			Help: "Unix time of the last advisory sync that completed (0: none since this replica started syncing)."}),
	}
	// Every result from the start: an alert on failed runs without a
	// success needs the ok series before the first one.
	for _, r := range []string{"ok", "failed", "stopped"} {
		a.runs.WithLabelValues(r)
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(a.leader, a.runs, a.fetched, a.changed, a.lastSuccess)
	}
	return a, nil
}

// Run syncs while this replica holds the lease, until ctx ends.
func (a *AdvisorySync) Run(ctx context.Context) {
	runLeased(ctx, a.store.db, leaseAdvisories, a.opts.LeaseRetry, a.leader, a.loop)
}

// connection is the connection whose App syncs: the first, by id, on
// which Dependabot alerts work; "" when there is none.
func (a *AdvisorySync) connection() string {
	ids := a.store.view.effective(dependabot)
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

// loop runs the sync when it is due, for as long as ctx lasts. The
// schedule is kept in the status row, so a replica that takes the lease
// over goes on where the last one left.
func (a *AdvisorySync) loop(ctx context.Context) {
	st, ok := readStatus(ctx, a.opts.Poll, "the advisory sync's status", a.store.advisories.SyncStatus)
	if !ok {
		return
	}
	schedule(ctx, a.store, a.opts.Poll, st, func(s *advisories.SyncStatus) *time.Time { return &s.NextRun }, a.connection,
		func(s advisories.SyncStatus) { a.save(ctx, s) },
		func(conn string, s advisories.SyncStatus) advisories.SyncStatus { return a.run(ctx, conn, s) })
}

// run syncs once as conn's App, stopping early if Dependabot alerts stop
// working on conn, and returns the status after it.
func (a *AdvisorySync) run(ctx context.Context, conn string, st advisories.SyncStatus) advisories.SyncStatus {
	log := logging.FromContext(ctx).With(zap.String("connection_id", conn))
	st.ConnectionID, st.LastStart = conn, time.Now()
	a.save(ctx, st)

	stopped := errors.New("the Dependabot alerts feature stopped working on the connection")
	runCtx, cancel := whileWorking(ctx, a.store, conn, dependabot, a.opts.Poll, stopped)
	defer cancel(nil)
	syncer := advisories.Syncer{Store: a.store.advisories, GitHub: a.app.client(conn), PerPage: a.opts.PerPage}
	res, err := syncer.Run(runCtx)
	st.LastEnd = time.Now()
	st.Fetched, st.Changed = int64(res.Fetched), int64(res.Changed)
	a.fetched.Add(float64(res.Fetched))
	a.changed.Add(float64(res.Changed))
	switch {
	case err == nil:
		a.runs.WithLabelValues("ok").Inc()
		a.lastSuccess.Set(float64(st.LastEnd.Unix()))
		st.LastSuccess, st.LastError, st.Failures = st.LastEnd, "", 0
		st.NextRun = st.LastEnd.Add(a.opts.Every)
		log.Info("advisories synced", zap.Int("pages", res.Pages), zap.Int("fetched", res.Fetched), zap.Int("changed", res.Changed))
	case errors.Is(context.Cause(runCtx), stopped) && ctx.Err() == nil:
		// What was stored stays; the next run, when the feature works
		// again, goes on from there (and starts at once).
		a.runs.WithLabelValues("stopped").Inc()
		st.LastError, st.NextRun = "stopped: "+stopped.Error(), time.Time{}
		log.Info("advisory sync stopped", zap.Int("fetched", res.Fetched))
	case ctx.Err() != nil:
		// This replica is stopping or lost the lease: the next holder
		// resumes, at once.
		st.LastError, st.NextRun = "interrupted: the feature gate stopped", st.LastEnd
	default:
		a.runs.WithLabelValues("failed").Inc()
		st.Failures++
		st.NextRun = st.LastEnd.Add(runBackoff(st.Failures, a.opts.MinBackoff, a.opts.MaxBackoff))
		if fe := (*advisories.FetchError)(nil); errors.As(err, &fe) {
			err = brokerclient.Classify(fe.Err)
		}
		var ge *brokerclient.GitHubError
		if errors.As(err, &ge) && ge.Kind == brokerclient.ErrRateLimited && ge.RetryAt.After(st.NextRun) {
			st.NextRun = ge.RetryAt
		}
		st.LastError = failureWords(err, st.NextRun, "the feature gate could not store the advisories")
		log.Warn("advisory sync failed; will retry", zap.Time("retry_at", st.NextRun), zap.Int("fetched", res.Fetched), zap.Error(err))
	}
	return st
}

// save records st, logging a failure: the status pages then show the
// previous run until the next save.
func (a *AdvisorySync) save(ctx context.Context, st advisories.SyncStatus) {
	// A replica that is stopping still records how its run ended.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := a.store.advisories.SaveSyncStatus(ctx, st); err != nil {
		logging.FromContext(ctx).Warn("recording the advisory sync's status", zap.Error(err))
	}
}

// wake waits for changed (nil: never), d, or ctx's end, and says whether
// ctx is still live.
func wake(ctx context.Context, changed <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-changed:
	case <-t.C:
	}
	return true
}

// runLeased runs work while this replica holds the lease name, until ctx
// ends, with leader at 1 meanwhile.
func runLeased(ctx context.Context, db *sqldb.DB, name string, retry time.Duration, leader prometheus.Gauge, work func(context.Context)) {
	l := db.Lease(name)
	l.Retry = retry
	l.OnChange = sqldb.GaugeOnChange(leader)
	l.Run(ctx, work)
}

// Advisories is the store of Dependabot's vulnerability data.
func (s *Store) Advisories() *advisories.Store { return s.advisories }

// errDependabotOff refuses reading vulnerability data nobody keeps in
// sync.
var errDependabotOff = apierr.Precondition("DEPENDABOT_OFF", "dependabot_alerts",
	"Dependabot alerts work on no connection, so the gate keeps no vulnerability data in sync: an admin turns the feature on for a CONNECTED connection")

// ListAdvisories answers the advisories affecting one version of a
// package, from the synced copy.
func (s *Server) ListAdvisories(ctx context.Context, req *featuregatev1.ListAdvisoriesRequest) (*featuregatev1.ListAdvisoriesResponse, error) {
	if len(s.view.effective(dependabot)) == 0 {
		return nil, errDependabotOff
	}
	found, err := s.store.advisories.Affecting(ctx, req.GetEcosystem(), req.GetPackage(), req.GetVersion())
	if errors.Is(err, advisories.ErrInvalidQuery) {
		var v apierr.Violations
		v.Add("version", err.Error())
		return nil, v.Err()
	}
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	st, err := s.store.advisories.SyncStatus(ctx)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	out := &featuregatev1.ListAdvisoriesResponse{SyncTime: timestamp(st.LastSuccess), Advisories: make([]*featuregatev1.Advisory, 0, len(found))}
	for i := range found {
		out.Advisories = append(out.Advisories, advisoryProto(&found[i]))
	}
	return out, nil
}

const advisoryBatch = 500

// WatchAdvisories streams the advisories stored after a revision, then
// each change as the sync stores it.
func (s *Server) WatchAdvisories(req *featuregatev1.WatchAdvisoriesRequest, stream grpc.ServerStreamingServer[featuregatev1.WatchAdvisoriesResponse]) error {
	ctx := stream.Context()
	err := sqldb.Tail(ctx, &s.store.advisories.Notifier, s.pollInterval, s.stopping, req.GetAfterRevision(), advisoryBatch,
		s.store.advisories.Changes,
		func(a advisories.Advisory) int64 { return a.Revision },
		func(a advisories.Advisory) error {
			return stream.Send(&featuregatev1.WatchAdvisoriesResponse{Advisory: advisoryProto(&a)})
		})
	return apierr.StreamEnd(err, sqldb.ErrStopping, func(err error) error { return toStatus(ctx, err) })
}

// GetAdvisorySyncStatus says how the advisory sync goes.
func (s *Server) GetAdvisorySyncStatus(ctx context.Context, _ *featuregatev1.GetAdvisorySyncStatusRequest) (*featuregatev1.GetAdvisorySyncStatusResponse, error) {
	st, err := s.store.advisories.SyncStatus(ctx)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	n, err := s.store.advisories.Count(ctx)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	out := &featuregatev1.AdvisorySyncStatus{
		ConnectionId: st.ConnectionID, LastStartTime: timestamp(st.LastStart), LastEndTime: timestamp(st.LastEnd),
		LastSuccessTime: timestamp(st.LastSuccess), LastError: st.LastError, Fetched: st.Fetched, Changed: st.Changed,
		Failures: st.Failures, NextRunTime: timestamp(st.NextRun), Advisories: n,
	}
	on := len(s.view.effective(dependabot)) > 0
	switch {
	case !on || st.NextRun.IsZero() && !st.Running():
		out.State = featuregatev1.AdvisorySyncState_ADVISORY_SYNC_STATE_OFF
		out.Message = "off: Dependabot alerts work on no connection, so nothing is downloaded"
		out.NextRunTime = nil
	case st.Running():
		out.State = featuregatev1.AdvisorySyncState_ADVISORY_SYNC_STATE_RUNNING
		out.Message = "downloading advisories from GitHub.com now"
	case st.Failures > 0:
		out.State = featuregatev1.AdvisorySyncState_ADVISORY_SYNC_STATE_RETRYING
		out.Message = fmt.Sprintf("the last %d runs failed; the next try is at %s UTC", st.Failures, st.NextRun.UTC().Format(time.DateTime))
	default:
		out.State = featuregatev1.AdvisorySyncState_ADVISORY_SYNC_STATE_SCHEDULED
		out.Message = "up to date as of the last run; the next is at " + st.NextRun.UTC().Format(time.DateTime) + " UTC"
	}
	return &featuregatev1.GetAdvisorySyncStatusResponse{Status: out}, nil
}

// advisoryProto is the API form of a stored advisory.
func advisoryProto(a *advisories.Advisory) *featuregatev1.Advisory {
	out := &featuregatev1.Advisory{
		GhsaId: a.GHSAID, CveId: a.CVEID, Summary: a.Summary, Severity: a.Severity, CvssScore: a.CVSSScore, CvssVector: a.CVSSVector,
		HtmlUrl: a.HTMLURL, PublishTime: timestamp(a.PublishedAt), UpdateTime: timestamp(a.UpdatedAt), WithdrawTime: timestamp(a.WithdrawnAt),
		Revision: a.Revision,
	}
	for _, c := range a.CWEs {
		out.CweIds = append(out.CweIds, c.ID)
	}
	for _, p := range a.Packages {
		out.Packages = append(out.Packages, &featuregatev1.VulnerablePackage{Ecosystem: p.Ecosystem, Name: p.Name, VulnerableRange: p.VulnerableRange, FirstPatchedVersion: p.FirstPatched})
	}
	return out
}
