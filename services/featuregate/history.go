package featuregate

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/apierr"
	"github.com/ghconnect/ghconnect/pkg/sqldb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	defaultHistoryPage = 20
	maxHistoryPage     = 100
)

// ListSettingsHistory implements the RPC.
func (s *Server) ListSettingsHistory(ctx context.Context, req *featuregatev1.ListSettingsHistoryRequest) (*featuregatev1.ListSettingsHistoryResponse, error) {
	var v apierr.Violations
	scope := sqldb.NewHistoryScope(req.GetConnectionId(), req.GetNewestFirst())
	size := int(req.GetPageSize()) // never negative: the rules refuse it
	switch {
	case size == 0:
		size = defaultHistoryPage
	case size > maxHistoryPage:
		size = maxHistoryPage
	}
	from, err := scope.From(req.GetPageToken())
	v.Check("page_token", err)
	if err := v.Err(); err != nil {
		return nil, err
	}
	evs, err := s.store.History(ctx, scope, from, size+1)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	resp := &featuregatev1.ListSettingsHistoryResponse{Events: evs}
	if len(evs) > size {
		resp.Events = evs[:size]
		resp.NextPageToken = scope.PageToken(evs[size-1].Revision)
	}
	return resp, nil
}

// History returns up to limit audit events of the scope's connection (or
// all) after revision from, oldest first, or when the scope is newest
// first before it (0: from the latest), newest first.
func (s *Store) History(ctx context.Context, scope sqldb.HistoryScope, from int64, limit int) ([]*featuregatev1.SettingsEvent, error) {
	q := `SELECT revision, connection_id, action, actor, via, event_time, detail FROM gate_events WHERE `
	order := "revision"
	switch {
	case !scope.NewestFirst:
		q += `revision > $1`
	case from > 0:
		q += `revision < $1`
		order = "revision DESC"
	default:
		q += `$1 = 0`
		order = "revision DESC"
	}
	args := []any{from}
	if scope.ConnectionID != "" {
		q += ` AND connection_id = $2`
		args = append(args, scope.ConnectionID)
	}
	rows, err := s.db.QueryContext(ctx, fmt.Sprintf(`%s ORDER BY %s LIMIT %d`, q, order, limit), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*featuregatev1.SettingsEvent
	for rows.Next() {
		ev := &featuregatev1.SettingsEvent{}
		var at int64
		var detail string
		if err := rows.Scan(&ev.Revision, &ev.ConnectionId, &ev.Action, &ev.Actor, &ev.Via, &at, &detail); err != nil {
			return nil, err
		}
		ev.EventTime = timestamppb.New(time.UnixMicro(at))
		if err := describeDetail(ev, detail); err != nil {
			return nil, fmt.Errorf("gate event %d: %w", ev.Revision, err)
		}
		ev.ActionKind = audit.Of(ev.Action)
		ev.Summary = audit.Summary(ev.Action, ev)
		out = append(out, ev)
	}
	return out, rows.Err()
}

// describeDetail fills ev from the JSON detail its action wrote.
func describeDetail(ev *featuregatev1.SettingsEvent, detail string) error {
	var d struct {
		From        map[string]string `json:"from"`
		To          map[string]string `json:"to"`
		User        string            `json:"user"`
		Feature     string            `json:"feature"`
		OptedIn     bool              `json:"opted_in"`
		GithubLogin string            `json:"github_login"`
		Gained      map[string]string `json:"gained"`
		Lost        map[string]string `json:"lost"`
		Stopped     []string          `json:"stopped_working"`
		Again       []string          `json:"working_again"`
	}
	if err := json.Unmarshal([]byte(detail), &d); err != nil {
		return err
	}
	ev.User, ev.OptedIn, ev.GithubLogin = d.User, d.OptedIn, d.GithubLogin
	ev.PermissionsGained, ev.PermissionsLost = d.Gained, d.Lost
	for _, f := range d.Stopped {
		ev.StoppedWorking = append(ev.StoppedWorking, featureByName(f))
	}
	for _, f := range d.Again {
		ev.WorkingAgain = append(ev.WorkingAgain, featureByName(f))
	}
	if d.Feature != "" {
		ev.Feature = featureByName(d.Feature)
	}
	for _, info := range catalog {
		name := featureName(info.Feature)
		if d.From[name] != d.To[name] {
			ev.Changes = append(ev.Changes, &featuregatev1.SettingChange{Feature: info.Feature,
				From: parseSetting(info.Feature, d.From[name]), To: parseSetting(info.Feature, d.To[name])})
		}
	}
	return nil
}

// parseSetting reads settingsDetail's form back: "on" or "off", with
// "+private" when private repositories are included.
func parseSetting(f featuregatev1.Feature, v string) *featuregatev1.FeatureSetting {
	state, private := strings.CutSuffix(v, "+private")
	return &featuregatev1.FeatureSetting{Feature: f, Enabled: state == "on", IncludePrivate: private}
}
