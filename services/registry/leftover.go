package registry

import (
	"context"
	"errors"
	"strings"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/google/go-github/v60/github"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Apps left on GitHub.com. Disabling GitHub Connect removes the App's
// installation and its key here, but only the account's owner can delete
// the App itself on GitHub.com, so an App this server created stays there
// until someone does. The admin page lists each until GitHub.com no longer
// has it.
//
// GET /apps/{app_slug} shows a private App (every App the manifest flow
// creates is private) only to a token of its own account. The check uses,
// when the server is connected to that account now, a one-request
// installation token of the current App (metadata:read, revoked at once);
// otherwise it asks anonymously, which can prove an App present (were it
// public) but never gone.

// leftoverScan bounds how many ended connections, newest first, are
// looked at.
const leftoverScan = 50

// appGone records, on an ended connection, that its App is gone from
// GitHub.com.
func appGone() Move {
	return Move{action: actionAppGone, rule: func(c *registryv1.Connection) error {
		return inState(c, stateDisconnected, "only an ended connection's App is looked for on GitHub.com")
	}}
}

// ListLeftoverApps implements the RPC.
func (s *Server) ListLeftoverApps(ctx context.Context, _ *registryv1.ListLeftoverAppsRequest) (*registryv1.ListLeftoverAppsResponse, error) {
	if err := s.needConnector(); err != nil {
		return nil, err
	}
	ended, _, err := s.store.List(ctx, leftoverScan, "", []registryv1.ConnectionState{stateDisconnected})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	live, err := s.store.InState(ctx, stateConnected)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	inUse := map[int64]bool{}
	for _, c := range live {
		inUse[c.GetApp().GetAppId()] = true
	}
	resp := &registryv1.ListLeftoverAppsResponse{}
	listed := map[int64]bool{}
	for _, c := range ended {
		id := c.GetApp().GetAppId()
		if id == 0 || inUse[id] || listed[id] {
			continue
		}
		created, gone, err := s.appHistory(ctx, c.Id)
		if err != nil {
			return nil, toStatus(ctx, err)
		}
		if !created || gone {
			continue
		}
		listed[id] = true
		app, isGone := s.checkLeftover(ctx, c, live)
		if isGone {
			if _, err := s.store.Update(ctx, c.Id, "", appGone(), Change{Actor: "system:registry", Reason: "GitHub.com no longer has the App " + c.GetApp().GetSlug()}); err != nil {
				return nil, toStatus(ctx, err)
			}
			continue
		}
		resp.Apps = append(resp.Apps, app)
	}
	return resp, nil
}

// appHistory says whether this server created connection id's App (the
// manifest flow, not an existing App connected) and whether it was since
// found gone from GitHub.com.
func (s *Server) appHistory(ctx context.Context, id string) (created, gone bool, err error) {
	evs, err := s.store.Events(ctx, 0, id, 1000)
	if err != nil {
		return false, false, err
	}
	for _, ev := range evs {
		switch ev.ActionKind {
		case actionAppCreated:
			created = true
		case actionAppGone:
			gone = true
		}
	}
	return created, gone, nil
}

// checkLeftover asks GitHub.com whether ended connection c's App still
// exists (asked each time: the list is short, and read when the admin
// page is); gone is true only when a token of the App's own account was
// told it does not.
func (s *Server) checkLeftover(ctx context.Context, c *registryv1.Connection, live []*registryv1.Connection) (app *registryv1.LeftoverApp, gone bool) {
	id := c.GetApp().GetAppId()
	app = &registryv1.LeftoverApp{ConnectionId: c.Id, Account: c.Account, AppId: id, Slug: c.GetApp().GetSlug(), CheckTime: timestamppb.New(s.now())}
	var owner *registryv1.Connection
	for _, l := range live {
		if strings.EqualFold(l.GetAccount().GetLogin(), c.GetAccount().GetLogin()) && l.GetAccount().GetKind() == c.GetAccount().GetKind() && l.GetInstallationId() != 0 {
			owner = l
		}
	}
	found, err := s.connector.appExists(ctx, c.GetApp().GetSlug(), owner)
	log := logging.FromContext(ctx)
	switch {
	case err != nil:
		log.Warn("checking an App left on GitHub.com", zap.String("connection_id", c.Id), zap.Int64("app_id", id), zap.Error(err))
		app.Status, app.Note = registryv1.LeftoverAppStatus_LEFTOVER_APP_STATUS_UNKNOWN, "GitHub.com could not be asked just now; it is asked again on the next visit"
	case found:
		app.Status = registryv1.LeftoverAppStatus_LEFTOVER_APP_STATUS_PRESENT
	case owner != nil:
		return nil, true
	default:
		app.Status = registryv1.LeftoverAppStatus_LEFTOVER_APP_STATUS_UNKNOWN
		app.Note = "GitHub.com shows a private App only to its own account, and this server is not connected to " + c.GetAccount().GetLogin() + " now: if the App is still listed in that account's settings, delete it there"
	}
	return app, false
}

// appExists asks GET /apps/{slug}: with a one-request token of owner's
// installation (the server's current connection to the App's account)
// when there is one, anonymously otherwise.
func (c *Connector) appExists(ctx context.Context, slug string, owner *registryv1.Connection) (bool, error) {
	auth := ""
	if owner != nil {
		jwt, err := c.appJWT(ctx, owner.GetApp().GetAppId(), keyName(owner.Id), signingVersion(owner))
		if err != nil {
			return false, err
		}
		tok, _, err := c.github(jwt).Apps.CreateInstallationToken(ctx, owner.GetInstallationId(), &github.InstallationTokenOptions{
			Permissions: &github.InstallationPermissions{Metadata: github.String("read")},
		})
		if err != nil {
			return false, classify(err)
		}
		auth = tok.GetToken()
		defer func() {
			if _, err := c.github(auth).Apps.RevokeInstallationToken(context.WithoutCancel(ctx)); err != nil {
				logging.FromContext(ctx).Warn("revoking the token of an App check", zap.Error(err))
			}
		}()
	}
	_, _, err := c.github(auth).Apps.Get(ctx, slug)
	if errors.Is(classify(err), ErrGitHubNotFound) {
		return false, nil
	}
	return err == nil, classify(err)
}
