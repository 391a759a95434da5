package featuregate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/services/broker/brokerclient"
	"github.com/google/go-github/v60/github"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc/status"
)

const (
	activeLink = featuregatev1.LinkStatus_LINK_STATUS_ACTIVE
	// leaseUploader is the lease of the one replica that uploads.
	leaseUploader = "featuregate-contributions-uploader"
	// uploadBatch is how many outbox rows one POST carries (GitHub
	// Connect's limit, as the emulator has it).
	uploadBatch = 1000
	// batchesPerPass bounds one connection's turn, so others get theirs.
	batchesPerPass = 20
)

// contributionsPermissions is what the uploader asks the broker for: the
// feature's permissions in the catalog, nothing more.
var contributionsPermissions = byFeature[featuregatev1.Feature_FEATURE_UNIFIED_CONTRIBUTIONS].Permissions

// UploaderOptions configure the uploader; zero values take the defaults.
type UploaderOptions struct {
	// Poll is how often the uploader looks for work besides this
	// replica's own commits (another replica's counts); default 5 s.
	Poll time.Duration
	// MinBackoff and MaxBackoff bound the wait after GitHub.com failed
	// (5xx, no answer); the wait doubles from the one to the other.
	// Defaults 1 s and 5 min. A rate limit waits as long as GitHub.com
	// says instead.
	MinBackoff, MaxBackoff time.Duration
	// LeaseRetry is how often a replica that does not upload tries to take
	// over (sqldb.Lease.Retry); default 5 s.
	LeaseRetry time.Duration
	// Registerer takes the uploader's metrics (nil: none).
	Registerer prometheus.Registerer
}

// Uploader sends the outbox to GitHub.com as the connection's App, with
// installation tokens from the broker, in one replica at a time.
type Uploader struct {
	store *Store
	app   *appClients
	opts  UploaderOptions

	leader  prometheus.Gauge
	uploads *prometheus.CounterVec
	// pruned is when counts too old to send were last forgotten.
	pruned time.Time
}

// pruneEvery: old counts are forgotten this often (a scan of the table).
const pruneEvery = time.Hour

// NewUploader uploads to the GitHub API at githubURL.
func NewUploader(store *Store, broker brokerv1.TokenBrokerServiceClient, githubURL string, opts UploaderOptions) (*Uploader, error) {
	base, err := githubBase(githubURL)
	if err != nil {
		return nil, err
	}
	if opts.Poll <= 0 {
		opts.Poll = 5 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(5*time.Minute, opts.MinBackoff)
	}
	u := &Uploader{store: store, app: newAppClients(broker, base, contributionsPermissions, 30*time.Second), opts: opts,
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ghconnect_featuregate_contributions_uploader_leader",
			Help: "1 while this replica holds the lease of the unified-contributions uploader."}),
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ghconnect_featuregate_contributions_uploads_total",
			Help: "Requests to GitHub.com carrying unified contributions, by kind (set, delete) and result (ok, retry)."}, []string{"kind", "result"}),
	}
	// Every series from the start, for the dashboards and alerts.
	for _, kind := range []string{"set", "delete"} {
		for _, result := range []string{"ok", "retry"} {
			u.uploads.WithLabelValues(kind, result)
		}
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(u.leader, u.uploads)
	}
	return u, nil
}

// RegisterOutboxGauge exports the outbox's size, with or without an
// uploader in this process: every replica reads the shared database.
func RegisterOutboxGauge(reg prometheus.Registerer, store *Store) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ghconnect_featuregate_contributions_outbox_rows",
		Help: "Rows in the unified-contributions outbox: counts and deletes GitHub.com has not confirmed yet."},
		func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n, err := store.OutboxSize(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		}))
}

// Run uploads while this replica holds the lease, until ctx ends.
func (u *Uploader) Run(ctx context.Context) {
	runLeased(ctx, u.store.db, leaseUploader, u.opts.LeaseRetry, u.leader, u.loop)
}

// backoff is a connection's wait after GitHub.com failed.
type backoff struct {
	until time.Time
	wait  time.Duration
}

func (u *Uploader) loop(ctx context.Context) {
	waits := map[string]*backoff{}
	for {
		changed := u.store.Changed()
		if !wake(ctx, changed, u.pass(ctx, waits)) {
			return
		}
	}
}

// pass sends what may leave of every connection, and returns how soon to
// look again.
func (u *Uploader) pass(ctx context.Context, waits map[string]*backoff) time.Duration {
	log := logging.FromContext(ctx)
	next := u.opts.Poll
	if time.Since(u.pruned) > pruneEvery {
		if err := u.store.pruneContributions(ctx); err != nil && ctx.Err() == nil {
			log.Warn("forgetting old contribution counts", zap.Error(err))
		} else {
			u.pruned = time.Now()
		}
	}
	conns, err := u.store.OutboxConnections(ctx)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("reading the contributions outbox", zap.Error(err))
		}
		return next
	}
	for _, conn := range conns {
		if st, _ := featureState(u.store.view.get(conn), featuregatev1.Feature_FEATURE_UNIFIED_CONTRIBUTIONS); st != featuregatev1.Reason_REASON_EFFECTIVE {
			continue // waits until the feature works again
		}
		w := waits[conn]
		if w != nil && time.Now().Before(w.until) {
			next = min(next, time.Until(w.until))
			continue
		}
		more, retryAt, err := u.drain(ctx, conn)
		if ctx.Err() != nil {
			return next
		}
		if err == nil {
			delete(waits, conn)
			if more {
				next = 0
			}
			continue
		}
		if w == nil {
			w = &backoff{}
			waits[conn] = w
		}
		w.wait = min(max(2*w.wait, u.opts.MinBackoff), u.opts.MaxBackoff)
		w.until = time.Now().Add(w.wait)
		if retryAt.After(w.until) {
			w.until = retryAt
		}
		next = min(next, time.Until(w.until))
		log.Warn("sending contributions to GitHub.com failed; will retry", zap.String("connection_id", conn), zap.Time("retry_at", w.until), zap.Error(err))
		if err := u.store.uploadFailed(ctx, conn, uploadErrorWords(err, w.until)); err != nil && ctx.Err() == nil {
			log.Warn("recording a failed contributions upload", zap.String("connection_id", conn), zap.Error(err))
		}
	}
	return max(next, 0)
}

// drain sends conn's sendable rows, a bounded number of batches; more
// says there may be more. A failure returns when GitHub.com asked to be
// called again, if it did.
func (u *Uploader) drain(ctx context.Context, conn string) (more bool, retryAt time.Time, err error) {
	gh := u.app.client(conn)
	for range batchesPerPass {
		rows, err := u.store.sendable(ctx, conn, uploadBatch)
		if err != nil || len(rows) == 0 {
			return false, time.Time{}, err
		}
		// In order: counts go together until a delete, which goes alone,
		// so a delete never removes counts queued after it.
		for start := 0; start < len(rows); {
			end := start
			for end < len(rows) && rows[end].day != "" {
				end++
			}
			seg := rows[start:end]
			if end == start {
				seg = rows[start : start+1]
			}
			if retryAt, err := u.send(ctx, gh, conn, seg); err != nil {
				return false, retryAt, err
			}
			if err := u.store.confirm(ctx, conn, seg); err != nil {
				return false, time.Time{}, err
			}
			start += len(seg)
		}
		if len(rows) < uploadBatch {
			return false, time.Time{}, nil
		}
	}
	return true, time.Time{}, nil
}

// uploadErrorWords says why an upload failed, for the status pages.
func uploadErrorWords(err error, retryAt time.Time) string {
	return failureWords(err, retryAt, "the feature gate could not read or update its outbox")
}

// failureWords says why a call to GitHub.com as a connection's App
// failed, for the status pages: the kind of failure and when it is
// retried, never GitHub.com's or the broker's full answer (which the log
// has). local is the words for a failure of the gate's own.
func failureWords(err error, retryAt time.Time, local string) string {
	retry := "; retrying at " + retryAt.UTC().Format("15:04:05") + " UTC"
	var ge *brokerclient.GitHubError
	switch {
	case errors.As(err, &ge) && ge.StatusCode != 0:
		return fmt.Sprintf("%s (HTTP %d)%s", ge.Kind, ge.StatusCode, retry)
	case errors.As(err, &ge):
		return ge.Kind.Error() + retry
	}
	if st, ok := status.FromError(err); ok {
		return fmt.Sprintf("the token broker gave no token for the connection's App (%s)%s", st.Code(), retry)
	}
	return local + retry
}

type contributionJSON struct {
	UserID int64  `json:"user_id"`
	Date   string `json:"date"`
	Count  int64  `json:"count"`
}

// send makes one request: a delete (one row with day "") or a batch of
// counts. Ids GitHub.com does not know as people are logged and dropped:
// no resend would change that.
func (u *Uploader) send(ctx context.Context, gh *github.Client, conn string, seg []outboxRow) (time.Time, error) {
	var req *http.Request
	var err error
	kind := "set"
	if seg[0].day == "" {
		kind = "delete"
		req, err = gh.NewRequest(http.MethodDelete, "connect/contributions/"+strconv.FormatInt(seg[0].githubID, 10), nil)
	} else {
		body := struct {
			Contributions []contributionJSON `json:"contributions"`
		}{}
		for _, r := range seg {
			body.Contributions = append(body.Contributions, contributionJSON{UserID: r.githubID, Date: r.day, Count: r.count})
		}
		req, err = gh.NewRequest(http.MethodPost, "connect/contributions", body)
	}
	if err != nil {
		return time.Time{}, err
	}
	var out struct {
		UnknownUserIDs []int64 `json:"unknown_user_ids"`
	}
	_, err = gh.Do(ctx, req, &out)
	if err != nil {
		u.uploads.WithLabelValues(kind, "retry").Inc()
		err = brokerclient.Classify(err)
		var ge *brokerclient.GitHubError
		if errors.As(err, &ge) && ge.Kind == brokerclient.ErrRateLimited {
			return ge.RetryAt, err
		}
		return time.Time{}, err
	}
	u.uploads.WithLabelValues(kind, "ok").Inc()
	if len(out.UnknownUserIDs) > 0 {
		logging.FromContext(ctx).Warn("GitHub.com knows no such people; their counts are dropped", zap.String("connection_id", conn), zap.Int64s("github_ids", out.UnknownUserIDs))
	}
	return time.Time{}, nil
}
