package ghactions

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ghconnect/ghconnect/pkg/sqldb"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Store is what the gate's database keeps of GitHub.com actions: the
// policy and the downloads' status. Its migrations (ghactions_NNN_…) run
// on the gate's database after the gate's own.
type Store struct {
	db *sqldb.DB
}

// Open migrates db and returns the store.
func Open(ctx context.Context, db *sqldb.DB) (*Store, error) {
	if err := db.MigrateDir(ctx, migrationFiles, "migrations"); err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// StoredPolicy is the policy with who set it, when, and its etag.
type StoredPolicy struct {
	Policy
	Etag      string
	UpdatedBy string
	UpdatedAt time.Time // zero: never changed from the default
}

// Policy reads the policy.
func (s *Store) Policy(ctx context.Context) (StoredPolicy, error) {
	var p StoredPolicy
	var allowed int32
	var owned, verified int
	var patterns string
	var rev, at int64
	err := s.db.QueryRowContext(ctx, `SELECT allowed, github_owned, verified_creators, patterns, revision, updated_by, updated_at
		FROM actions_policy WHERE id = 1`).Scan(&allowed, &owned, &verified, &patterns, &rev, &p.UpdatedBy, &at)
	if err != nil {
		return StoredPolicy{}, fmt.Errorf("ghactions: policy: %w", err)
	}
	p.Allowed, p.GitHubOwned, p.VerifiedCreators = Allowed(allowed), owned == 1, verified == 1
	if err := json.Unmarshal([]byte(patterns), &p.Patterns); err != nil {
		return StoredPolicy{}, fmt.Errorf("ghactions: policy patterns: %w", err)
	}
	p.Etag, p.UpdatedAt = strconv.FormatInt(rev, 10), fromMicros(at)
	return p, nil
}

// ErrEtagMismatch refuses a change made on a policy that changed since
// it was read.
var ErrEtagMismatch = errors.New("ghactions: the policy changed since it was read")

// SavePolicy replaces the policy if its etag is still etag ("": whatever
// it is), recording who did it. p must be valid.
func (s *Store) SavePolicy(ctx context.Context, p Policy, etag, by string, now time.Time) (StoredPolicy, error) {
	if err := p.Validate(); err != nil {
		return StoredPolicy{}, err
	}
	patterns := p.Patterns
	if patterns == nil {
		patterns = []string{}
	}
	body, err := json.Marshal(patterns)
	if err != nil {
		return StoredPolicy{}, err
	}
	q := `UPDATE actions_policy SET allowed = $1, github_owned = $2, verified_creators = $3, patterns = $4,
		revision = revision + 1, updated_by = $5, updated_at = $6 WHERE id = 1`
	args := []any{int(p.Allowed), boolInt(p.GitHubOwned), boolInt(p.VerifiedCreators), string(body), by, toMicros(now)}
	if etag != "" {
		rev, err := strconv.ParseInt(etag, 10, 64)
		if err != nil {
			return StoredPolicy{}, ErrEtagMismatch
		}
		q += ` AND revision = $7`
		args = append(args, rev)
	}
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return StoredPolicy{}, fmt.Errorf("ghactions: saving the policy: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return StoredPolicy{}, fmt.Errorf("ghactions: saving the policy: %w", err)
	} else if n == 0 {
		return StoredPolicy{}, ErrEtagMismatch
	}
	return s.Policy(ctx)
}

// Status is how the downloads from GitHub.com went, across replicas.
type Status struct {
	// Downloads and DownloadedBytes count tarballs fetched from
	// GitHub.com (cache hits are not).
	Downloads, DownloadedBytes int64
	// LastDownload names the last one ("owner/repo@ref (sha), n bytes").
	LastDownload   string
	LastDownloadAt time.Time
	// LastError is the last failure to reach GitHub.com or to download.
	LastError   string
	LastErrorAt time.Time
	// LastRefusal is the last request refused by the policy, or for a
	// private, missing or unknown action.
	LastRefusal   string
	LastRefusalAt time.Time
}

// Status reads the downloads' status.
func (s *Store) Status(ctx context.Context) (Status, error) {
	var st Status
	var dl, errAt, refAt int64
	err := s.db.QueryRowContext(ctx, `SELECT downloads, downloaded_bytes, last_download, last_download_at, last_error, last_error_at,
		last_refusal, last_refusal_at FROM actions_status WHERE id = 1`).Scan(&st.Downloads, &st.DownloadedBytes, &st.LastDownload, &dl,
		&st.LastError, &errAt, &st.LastRefusal, &refAt)
	if err != nil {
		return Status{}, fmt.Errorf("ghactions: status: %w", err)
	}
	st.LastDownloadAt, st.LastErrorAt, st.LastRefusalAt = fromMicros(dl), fromMicros(errAt), fromMicros(refAt)
	return st, nil
}

func (s *Store) recordDownload(ctx context.Context, what string, size int64, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE actions_status SET downloads = downloads + 1, downloaded_bytes = downloaded_bytes + $1,
		last_download = $2, last_download_at = $3 WHERE id = 1`, size, what, toMicros(at))
	return err
}

func (s *Store) recordError(ctx context.Context, what string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE actions_status SET last_error = $1, last_error_at = $2 WHERE id = 1`, what, toMicros(at))
	return err
}

func (s *Store) recordRefusal(ctx context.Context, what string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE actions_status SET last_refusal = $1, last_refusal_at = $2 WHERE id = 1`, what, toMicros(at))
	return err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// toMicros and fromMicros are the stored form of times (sqldb.Micros).
var toMicros, fromMicros = sqldb.Micros, sqldb.FromMicros
