package featuregate

import (
	"context"
	"database/sql"
	"errors"
	"time"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/ghconnect/ghconnect/services/broker/brokerclient"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// A Job is a feature's scheduled work with GitHub.com (license sync,
// server statistics): run at once when the feature starts working on an
// eligible connection, then every JobOptions.Every; stopped when it stops
// working; retried with backoff (and GitHub.com's rate-limit wait); one
// replica at a time, under a lease; every run recorded in gate_job_status
// for the status pages.

// JobOptions configure a Job; zero values take the defaults.
type JobOptions struct {
	// Every is the time between runs that succeeded; default 24 h.
	Every time.Duration
	// Poll is how often the job looks at the feature's state besides this
	// replica's own commits; default 5 s.
	Poll time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed run, which
	// doubles from the one to the other; defaults 30 s and 30 min.
	MinBackoff, MaxBackoff time.Duration
	// LeaseRetry is how often a replica that does not run the job tries to
	// take over; default 5 s.
	LeaseRetry time.Duration
	// Registerer takes the job's metrics (nil: none).
	Registerer prometheus.Registerer
}

// jobSpec is what a Job does.
type jobSpec struct {
	// name names the job's lease (featuregate-<name>), status row and
	// metrics (ghconnect_featuregate_<name>_…).
	name    string
	feature featuregatev1.Feature
	// title words the feature in messages.
	title string
	// eligible says whether the job can run for a connection on which the
	// feature works (nil: every one).
	eligible func(connAccount) bool
	// work runs once as conn's App and says what it did, in words.
	work func(ctx context.Context, conn string) (string, error)
}

// Job runs a jobSpec on schedule.
type Job struct {
	store *Store
	spec  jobSpec
	opts  JobOptions

	leader      prometheus.Gauge
	runs        *prometheus.CounterVec
	lastSuccess prometheus.Gauge
}

func newJob(store *Store, spec jobSpec, opts JobOptions) *Job {
	if opts.Every <= 0 {
		opts.Every = 24 * time.Hour
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
	prefix := "ghconnect_featuregate_" + spec.name
	j := &Job{store: store, spec: spec, opts: opts,
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: prefix + "_leader",
			Help: "1 while this replica holds the lease of the " + spec.title + " job."}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: prefix + "_runs_total",
			Help: "Runs of the " + spec.title + " job, by result (ok, failed, stopped: the feature stopped working)."}, []string{"result"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: prefix + "_last_success_seconds",
			Help: "Unix time of the last " + spec.title + " run that completed (0: none since this replica started running it)."}),
	}
	for _, r := range []string{"ok", "failed", "stopped"} {
		j.runs.WithLabelValues(r)
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(j.leader, j.runs, j.lastSuccess)
	}
	return j
}

// Run runs the job while this replica holds its lease, until ctx ends.
func (j *Job) Run(ctx context.Context) {
	runLeased(ctx, j.store.db, "featuregate-"+j.spec.name, j.opts.LeaseRetry, j.leader, j.loop)
}

// connection is the first connection, by id, on which the feature works
// and which the job can serve ("" if none).
func (j *Job) connection(ctx context.Context) string {
	for _, id := range j.store.view.effective(j.spec.feature) {
		if j.spec.eligible == nil {
			return id
		}
		if acc, err := j.store.accountOf(ctx, id); err == nil && j.spec.eligible(acc) {
			return id
		}
	}
	return ""
}

func (j *Job) loop(ctx context.Context) {
	st, ok := readStatus(ctx, j.opts.Poll, "the "+j.spec.title+" job's status", func(ctx context.Context) (jobStatus, error) { return j.store.jobStatus(ctx, j.spec.name) })
	if !ok {
		return
	}
	schedule(ctx, j.store, j.opts.Poll, st, func(s *jobStatus) *time.Time { return &s.NextRun },
		func() string { return j.connection(ctx) },
		func(s jobStatus) { j.save(ctx, s) },
		func(conn string, s jobStatus) jobStatus { return j.run(ctx, conn, s) })
}

// readStatus reads a scheduled task's status row, retrying every poll
// until it can (false: ctx ended first).
func readStatus[S any](ctx context.Context, poll time.Duration, what string, read func(context.Context) (S, error)) (S, bool) {
	st, err := read(ctx)
	for err != nil {
		if ctx.Err() != nil {
			return st, false
		}
		logging.FromContext(ctx).Warn("reading "+what, zap.Error(err))
		if !wake(ctx, nil, poll) {
			return st, false
		}
		st, err = read(ctx)
	}
	return st, true
}

// schedule runs a task when it is due, for as long as ctx lasts. The
// schedule is kept in the status st (next is its next run; zero while
// off), saved with save, so a replica that takes the lease over goes on
// where the last left. With no connection (conn "") nothing is due; when
// one appears the task runs at once; run returns the status after a run.
// It returns once ctx ends, also when that cuts a run short.
func schedule[S any](ctx context.Context, store *Store, poll time.Duration, st S, next func(*S) *time.Time,
	conn func() string, save func(S), run func(string, S) S) {
	for {
		changed := store.Changed()
		c := conn()
		due := next(&st)
		wait := poll
		switch {
		case c == "" && !due.IsZero():
			// Turned off, or no connection works: nothing is due.
			*due = time.Time{}
			save(st)
		case c == "":
		case due.IsZero():
			// Turned on (or working again): at once.
			*due = time.Now()
			fallthrough
		default:
			if d := time.Until(*due); d > 0 {
				wait = min(wait, d)
				break
			}
			st = run(c, st)
			save(st)
			if ctx.Err() != nil {
				// The run was cut short: it stays due for whoever runs
				// the schedule next.
				return
			}
			continue
		}
		if !wake(ctx, changed, wait) {
			return
		}
	}
}

// whileWorking is ctx, cancelled with stopped as its cause once feature f
// stops working on conn (this replica's commits wake it; another's are
// seen within poll).
func whileWorking(ctx context.Context, store *Store, conn string, f featuregatev1.Feature, poll time.Duration, stopped error) (context.Context, context.CancelCauseFunc) {
	runCtx, cancel := context.WithCancelCause(ctx)
	go func() {
		for {
			changed := store.Changed()
			if s, _ := featureState(store.view.get(conn), f); s != featuregatev1.Reason_REASON_EFFECTIVE {
				cancel(stopped)
				return
			}
			if !wake(runCtx, changed, poll) {
				return
			}
		}
	}()
	return runCtx, cancel
}

// runBackoff is the wait after failures runs failed in a row: from min,
// doubling, up to max.
func runBackoff(failures int32, minWait, maxWait time.Duration) time.Duration {
	wait := minWait
	for i := int32(1); i < failures && wait < maxWait; i++ {
		wait *= 2
	}
	return min(wait, maxWait)
}

func (j *Job) run(ctx context.Context, conn string, st jobStatus) jobStatus {
	log := logging.FromContext(ctx).With(zap.String("job", j.spec.name), zap.String("connection_id", conn))
	st.ConnectionID, st.LastStart = conn, time.Now()
	j.save(ctx, st)
	stopped := errors.New("the " + j.spec.title + " feature stopped working on the connection")
	runCtx, cancel := whileWorking(ctx, j.store, conn, j.spec.feature, j.opts.Poll, stopped)
	defer cancel(nil)
	result, err := j.spec.work(runCtx, conn)
	st.LastEnd = time.Now()
	switch {
	case err == nil:
		j.runs.WithLabelValues("ok").Inc()
		j.lastSuccess.Set(float64(st.LastEnd.Unix()))
		st.LastSuccess, st.LastError, st.LastResult, st.Failures = st.LastEnd, "", result, 0
		st.NextRun = st.LastEnd.Add(j.opts.Every)
		log.Info("job ran", zap.String("result", result))
	case errors.Is(context.Cause(runCtx), stopped) && ctx.Err() == nil:
		j.runs.WithLabelValues("stopped").Inc()
		st.LastError, st.NextRun = "stopped: "+stopped.Error(), time.Time{}
		log.Info("job stopped")
	case ctx.Err() != nil:
		st.LastError, st.NextRun = "interrupted: the feature gate stopped", st.LastEnd
	default:
		j.runs.WithLabelValues("failed").Inc()
		st.Failures++
		st.NextRun = st.LastEnd.Add(runBackoff(st.Failures, j.opts.MinBackoff, j.opts.MaxBackoff))
		err = brokerclient.Classify(err)
		var ge *brokerclient.GitHubError
		if errors.As(err, &ge) && ge.Kind == brokerclient.ErrRateLimited && ge.RetryAt.After(st.NextRun) {
			st.NextRun = ge.RetryAt
		}
		st.LastError = failureWords(err, st.NextRun, "the feature gate failed")
		log.Warn("job failed; will retry", zap.Time("retry_at", st.NextRun), zap.Error(err))
	}
	return st
}

func (j *Job) save(ctx context.Context, st jobStatus) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := j.store.saveJobStatus(ctx, j.spec.name, st); err != nil {
		logging.FromContext(ctx).Warn("recording the job's status", zap.String("job", j.spec.name), zap.Error(err))
	}
}

// jobStatus is a job's row of gate_job_status.
type jobStatus struct {
	ConnectionID       string
	LastStart, LastEnd time.Time
	LastSuccess        time.Time
	// LastError says why the last run failed or stopped (empty after a
	// success); LastResult what the last successful run did.
	LastError, LastResult string
	Failures              int32
	NextRun               time.Time
}

// Running says whether a run has started and not ended.
func (s jobStatus) Running() bool { return !s.LastStart.IsZero() && s.LastEnd.Before(s.LastStart) }

func (s *Store) jobStatus(ctx context.Context, name string) (jobStatus, error) {
	var st jobStatus
	var start, end, success, next int64
	err := s.db.QueryRowContext(ctx, `SELECT connection_id, last_start, last_end, last_success, last_error, last_result, failures, next_run
		FROM gate_job_status WHERE name = $1`, name).Scan(&st.ConnectionID, &start, &end, &success, &st.LastError, &st.LastResult, &st.Failures, &next)
	if errors.Is(err, sql.ErrNoRows) {
		return jobStatus{}, nil
	}
	if err != nil {
		return jobStatus{}, err
	}
	st.LastStart, st.LastEnd, st.LastSuccess, st.NextRun = sqldb.FromMicros(start), sqldb.FromMicros(end), sqldb.FromMicros(success), sqldb.FromMicros(next)
	return st, nil
}

func (s *Store) saveJobStatus(ctx context.Context, name string, st jobStatus) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO gate_job_status (name, connection_id, last_start, last_end, last_success, last_error, last_result, failures, next_run)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (name) DO UPDATE SET connection_id = excluded.connection_id, last_start = excluded.last_start, last_end = excluded.last_end,
		last_success = excluded.last_success, last_error = excluded.last_error, last_result = excluded.last_result, failures = excluded.failures, next_run = excluded.next_run`,
		name, st.ConnectionID, sqldb.Micros(st.LastStart), sqldb.Micros(st.LastEnd), sqldb.Micros(st.LastSuccess), st.LastError, st.LastResult, st.Failures, sqldb.Micros(st.NextRun))
	return err
}
