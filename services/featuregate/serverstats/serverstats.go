// Package serverstats is GitHub Connect's Server Statistics: the server's
// aggregate usage counts, reported by the server, are uploaded daily to
// the connected account on GitHub.com in the fields of GitHub's public
// server-statistics schema, and read back through its public route.
//
// Only totals leave: the report's message has no field that could hold a
// user, a repository or any content, and the upload is built from those
// fields alone (with the server's id, hostname and version, and the
// Connect features it has on).
package serverstats

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"github.com/google/go-github/v60/github"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// SchemaVersion is the version of GitHub's server-statistics schema the
// uploads follow.
const SchemaVersion = "20230306"

// Store keeps the server's reports and what GitHub.com read back.
type Store struct {
	db *sqldb.DB
}

// Open migrates db (serverstats_NNN migrations, after the gate's) and
// returns the store.
func Open(ctx context.Context, db *sqldb.DB) (*Store, error) {
	if err := db.MigrateDir(ctx, migrationFiles, "migrations"); err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Day is a UTC day as reports are keyed.
func Day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// Report keeps st as the counts of now's day, replacing an earlier report
// of that day; it returns the day.
func (s *Store) Report(ctx context.Context, st *featuregatev1.ServerStatistics, now time.Time) (string, error) {
	body, err := protojson.Marshal(st)
	if err != nil {
		return "", err
	}
	day := Day(now)
	_, err = s.db.ExecContext(ctx, `INSERT INTO server_stats_reports (day, body, reported_at) VALUES ($1, $2, $3)
		ON CONFLICT (day) DO UPDATE SET body = excluded.body, reported_at = excluded.reported_at`, day, string(body), now.UnixMicro())
	if err != nil {
		return "", fmt.Errorf("serverstats: storing the report: %w", err)
	}
	return day, nil
}

// Latest is the newest report, its day and when it came (nil if none).
func (s *Store) Latest(ctx context.Context) (*featuregatev1.ServerStatistics, string, time.Time, error) {
	var day, body string
	var at int64
	err := s.db.QueryRowContext(ctx, `SELECT day, body, reported_at FROM server_stats_reports ORDER BY day DESC LIMIT 1`).Scan(&day, &body, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", time.Time{}, nil
	}
	if err != nil {
		return nil, "", time.Time{}, fmt.Errorf("serverstats: latest report: %w", err)
	}
	st := &featuregatev1.ServerStatistics{}
	if err := protojson.Unmarshal([]byte(body), st); err != nil {
		return nil, "", time.Time{}, fmt.Errorf("serverstats: latest report: %w", err)
	}
	return st, day, sqldb.FromMicros(at), nil
}

// Remote is what GitHub.com read back after an upload.
type Remote struct {
	// Days is how many days of this server's statistics GitHub.com holds
	// in the range read; LastDate the newest.
	Days     int64
	LastDate string
}

// Remote reads what GitHub.com said last.
func (s *Store) Remote(ctx context.Context) (Remote, error) {
	var r Remote
	err := s.db.QueryRowContext(ctx, `SELECT days, last_date FROM server_stats_remote WHERE id = 1`).Scan(&r.Days, &r.LastDate)
	if err != nil {
		return Remote{}, fmt.Errorf("serverstats: remote: %w", err)
	}
	return r, nil
}

func (s *Store) saveRemote(ctx context.Context, r Remote) error {
	_, err := s.db.ExecContext(ctx, `UPDATE server_stats_remote SET days = $1, last_date = $2 WHERE id = 1`, r.Days, r.LastDate)
	return err
}

// Server names the server to GitHub.com.
type Server struct {
	ID, Hostname, Version string
	// Features are the Connect features it has on (feature names).
	Features []string
}

// ErrNoReport says the server has reported no counts yet.
var ErrNoReport = errors.New("the server has reported no statistics yet")

// Body is the upload of one day's report: an item of GitHub's
// server-statistics schema.
func Body(st *featuregatev1.ServerStatistics, day string, sv Server) map[string]any {
	body := fields(st.ProtoReflect())
	body["server_id"] = sv.ID
	body["collection_date"] = day + "T00:00:00Z"
	body["schema_version"] = SchemaVersion
	body["ghes_version"] = sv.Version
	body["host_name"] = sv.Hostname
	features := sv.Features
	if features == nil {
		features = []string{}
	}
	body["github_connect"] = map[string]any{"features_enabled": features}
	return body
}

// fields is m as JSON, named as in the proto (which are the schema's
// names), every field present and int64s as numbers (protojson would
// quote them).
func fields(m protoreflect.Message) map[string]any {
	out := map[string]any{}
	fds := m.Descriptor().Fields()
	for i := range fds.Len() {
		fd := fds.Get(i)
		v := m.Get(fd)
		switch fd.Kind() {
		case protoreflect.MessageKind:
			out[string(fd.Name())] = fields(v.Message())
		case protoreflect.Int64Kind:
			out[string(fd.Name())] = v.Int()
		case protoreflect.StringKind:
			out[string(fd.Name())] = v.String()
		case protoreflect.BoolKind:
			out[string(fd.Name())] = v.Bool()
		}
	}
	return out
}

// Upload sends the latest report to account (an enterprise's slug or an
// organization's login) through GitHub Connect's upload interface, then
// reads back the days GitHub.com holds of the server over the last 30
// days. It returns the day sent.
func Upload(ctx context.Context, gh *github.Client, s *Store, account string, sv Server, now time.Time) (string, Remote, error) {
	st, day, _, err := s.Latest(ctx)
	if err != nil {
		return "", Remote{}, err
	}
	if st == nil {
		return "", Remote{}, ErrNoReport
	}
	req, err := gh.NewRequest(http.MethodPost, "connect/server-statistics", Body(st, day, sv))
	if err != nil {
		return "", Remote{}, err
	}
	if _, err := gh.Do(ctx, req, nil); err != nil {
		return "", Remote{}, err
	}
	q := url.Values{"date_start": {Day(now.AddDate(0, 0, -30))}, "date_end": {Day(now)}}
	req, err = gh.NewRequest(http.MethodGet, "enterprise-installation/"+url.PathEscape(account)+"/server-statistics?"+q.Encode(), nil)
	if err != nil {
		return day, Remote{}, err
	}
	var held []struct {
		ServerID       string `json:"server_id"`
		CollectionDate string `json:"collection_date"`
	}
	if _, err := gh.Do(ctx, req, &held); err != nil {
		return day, Remote{}, err
	}
	var r Remote
	for _, h := range held {
		if h.ServerID != sv.ID {
			continue
		}
		r.Days++
		if d := h.CollectionDate[:min(len(h.CollectionDate), 10)]; d > r.LastDate {
			r.LastDate = d
		}
	}
	return day, r, s.saveRemote(ctx, r)
}
