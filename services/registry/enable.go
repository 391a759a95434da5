package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
	"go.uber.org/zap"
)

// Enabling GitHub Connect: the App-manifest flow (StartAppManifest,
// CompleteAppManifest, CompleteInstallation), connecting an App that
// exists already (ConnectExistingApp), and rotating the App's key
// (RotateAppKey).

// AppPermissions are the permissions the GitHub App asks for: what every
// Connect feature needs (the feature gate's catalog checks against it).
var AppPermissions = map[string]string{
	"contents": "read", "issues": "read", "metadata": "read", "vulnerability_alerts": "read",
	"members": "read", "organization_administration": "read",
}

// The kinds of single-use redirect state.
const (
	stateManifest = "manifest"
	stateInstall  = "install"
)

// person is the signed-in person a forwarder (the gateway) acts for, or ""
// for a direct caller (automation).
func person(ctx context.Context) string {
	if p, ok := auth.FromContext(ctx); ok && p.Via != "" {
		return p.Name
	}
	return ""
}

// checkOwner refuses a redirect that comes back in somebody else's browser
// than the person who started it.
func checkOwner(ctx context.Context, owner string) error {
	if owner != "" && person(ctx) != owner {
		return refusef("this link back from GitHub.com belongs to the enabling started by %s: sign in as %s, or start again", owner, owner)
	}
	return nil
}

func newState() (plain, hash string) {
	b := make([]byte, 24)
	rand.Read(b)
	plain = hex.EncodeToString(b)
	return plain, hashState(plain)
}

func hashState(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// StartAppManifest returns the manifest to post and where.
func (c *Connector) StartAppManifest(ctx context.Context, conn *registryv1.Connection, callback *url.URL, perms map[string]string) (*registryv1.StartAppManifestResponse, error) {
	if len(perms) == 0 {
		perms = AppPermissions
	}
	if err := mayEnable(conn); err != nil {
		return nil, err
	}
	if conn.App != nil {
		install, err := c.installURL(ctx, conn.Id, conn.App.GetSlug())
		if err != nil {
			return nil, err
		}
		return &registryv1.StartAppManifestResponse{InstallUrl: install}, nil
	}
	setup := *callback
	setup.Path = strings.TrimSuffix(setup.Path, "/callback") + "/setup"
	// App names are unique on GitHub.com and at most 34 characters; a
	// suffix keeps a retry (after an App was created but not kept) from
	// colliding with the earlier App.
	suffix, _ := newState()
	name := "GHES Connect " + conn.ServerHostname
	if len(name) > 29 {
		name = name[:29]
	}
	name += " " + suffix[:4]
	// Server users authorize the App on GitHub.com to link their
	// accounts; GitHub.com sends them back to the user callback.
	userCallback := *callback
	userCallback.Path = strings.TrimSuffix(userCallback.Path, "/callback") + "/user/callback"
	manifest, _ := json.Marshal(map[string]any{
		"name": name, "url": "https://" + conn.ServerHostname, "description": "GitHub Connect for " + conn.ServerHostname,
		"redirect_url": callback.String(), "setup_url": setup.String(), "public": false,
		"callback_urls": []string{userCallback.String()}, "request_oauth_on_install": false,
		"default_permissions": perms, "default_events": []string{},
		"hook_attributes": map[string]any{"url": "https://" + conn.ServerHostname + "/connect/webhook", "active": false},
	})
	state, hash := newState()
	expires := c.now().Add(10 * time.Minute)
	if err := c.Store.PutState(ctx, hash, conn.Id, stateManifest, person(ctx), expires); err != nil {
		return nil, err
	}
	page := "/organizations/" + conn.Account.GetLogin() + "/settings/apps/new"
	if conn.Account.GetKind() == registryv1.AccountKind_ACCOUNT_KIND_ENTERPRISE {
		page = "/enterprises/" + conn.Account.GetLogin() + "/settings/apps/new"
	}
	return &registryv1.StartAppManifestResponse{
		Manifest: string(manifest),
		PostUrl:  strings.TrimSuffix(c.GitHubWeb, "/") + page + "?" + url.Values{"state": {state}}.Encode(),
		State:    state,
	}, nil
}

// CompleteAppManifest converts the code, keeps the App's key in Vault and
// returns the installation page.
func (c *Connector) CompleteAppManifest(ctx context.Context, code, state string, ch Change) (*registryv1.Connection, string, error) {
	connID, owner, err := c.Store.PeekState(ctx, hashState(state), stateManifest)
	if err != nil {
		return nil, "", err
	}
	if err := checkOwner(ctx, owner); err != nil {
		return nil, "", err
	}
	conn, err := c.Store.Get(ctx, connID)
	if err != nil {
		return nil, "", err
	}
	if err := waitingForApp(conn); err != nil {
		return nil, "", err
	}
	var conv appConversion
	err = c.call(ctx, "", http.MethodPost, "app-manifests/"+url.PathEscape(code)+"/conversions", &conv)
	if err != nil {
		if errors.Is(err, ErrGitHubRefused) {
			return nil, "", refusef("GitHub.com refused the code (wrong, used or expired)")
		}
		return nil, "", fmt.Errorf("manifest conversion: %w", err)
	}
	if !conv.Owner.is(conn.Account.GetLogin()) {
		return nil, "", refusef("the App was created for %s, not for the connection's account %s", conv.Owner.name(), conn.Account.GetLogin())
	}
	pem := []byte(conv.PEM)
	conv.PEM = ""
	defer clear(pem)
	key := keyName(conn.Id)
	// A key left by an interrupted earlier attempt belongs to no App yet.
	if err := c.Transit.DeleteKey(ctx, key); err != nil {
		return nil, "", err
	}
	if _, err := c.Transit.ImportKey(ctx, key, pem); err != nil {
		return nil, "", err
	}
	c.crash.at("key_imported")
	// The secrets key is the Vault setup step's: the registry may only
	// encrypt and decrypt with it.
	clientSecret, err := c.Transit.Encrypt(ctx, vaulttransit.SecretsKey, []byte(conv.ClientSecret))
	if err != nil {
		return nil, "", err
	}
	webhookSecret, err := c.Transit.Encrypt(ctx, vaulttransit.SecretsKey, []byte(conv.WebhookSecret))
	if err != nil {
		return nil, "", err
	}
	app := &registryv1.GitHubApp{AppId: conv.ID, Slug: conv.Slug, ClientId: conv.ClientID, Permissions: conv.Permissions,
		ClientSecretCiphertext: clientSecret, WebhookSecretCiphertext: webhookSecret}
	out, err := c.take(ctx, conn.Id, conn.Etag, appCreated(app, c.newTransitKey(conn.Id)), ch)
	if err != nil {
		return nil, "", err
	}
	if err := c.Store.UseState(ctx, hashState(state), stateManifest); err != nil {
		return nil, "", err
	}
	logging.FromContext(ctx).Info("GitHub App created; its key is in Vault transit", zap.String("connection_id", conn.Id), zap.Int64("app_id", conv.ID), zap.String("transit_key", key))
	install, err := c.installURL(ctx, conn.Id, conv.Slug)
	if err != nil {
		return nil, "", err
	}
	return out, install, nil
}

// installURL issues a single-use state for the installation step and
// returns the GitHub.com page that installs the App.
func (c *Connector) installURL(ctx context.Context, connID, slug string) (string, error) {
	state, hash := newState()
	if err := c.Store.PutState(ctx, hash, connID, stateInstall, person(ctx), c.now().Add(time.Hour)); err != nil {
		return "", err
	}
	return strings.TrimSuffix(c.GitHubWeb, "/") + "/apps/" + url.PathEscape(slug) + "/installations/new?" + url.Values{"state": {state}}.Encode(), nil
}

// CompleteInstallation verifies the installation with an App JWT and
// connects.
func (c *Connector) CompleteInstallation(ctx context.Context, installationID int64, state string, ch Change) (*registryv1.Connection, error) {
	connID, owner, err := c.Store.PeekState(ctx, hashState(state), stateInstall)
	if err != nil {
		return nil, err
	}
	if err := checkOwner(ctx, owner); err != nil {
		return nil, err
	}
	conn, err := c.Store.Get(ctx, connID)
	if err != nil {
		return nil, err
	}
	if err := waitingForInstallation(conn); err != nil {
		return nil, err
	}
	inst, err := c.verifyInstallation(ctx, conn, installationID)
	if err != nil {
		return nil, err
	}
	out, err := c.take(ctx, conn.Id, "", withAccountID(markConnected(inst.ID), inst.Account.ID), ch)
	if err != nil {
		return nil, err
	}
	if err := c.Store.UseState(ctx, hashState(state), stateInstall); err != nil {
		logging.FromContext(ctx).Warn("install state already used", zap.String("connection_id", conn.Id))
	}
	return out, nil
}

// verifyInstallation asks GitHub, as the App, for the installation and
// checks it is on the connection's account.
func (c *Connector) verifyInstallation(ctx context.Context, conn *registryv1.Connection, id int64) (*ghInstallation, error) {
	jwt, err := c.appJWT(ctx, conn.App.GetAppId(), keyName(conn.Id), signingVersion(conn))
	if err != nil {
		return nil, err
	}
	inst := &ghInstallation{}
	if err := c.call(ctx, jwt, http.MethodGet, "app/installations/"+strconv.FormatInt(id, 10), inst); err != nil {
		if errors.Is(err, ErrGitHubNotFound) {
			return nil, refusef("installation %d does not belong to the App", id)
		}
		return nil, fmt.Errorf("verifying installation: %w", err)
	}
	if err := onAccount(conn, inst); err != nil {
		// The App was installed for this flow, on the wrong account: it
		// keeps no access there.
		if derr := c.deleteInstallation(ctx, jwt, id); derr != nil {
			logging.FromContext(ctx).Warn("removing the installation on the wrong account", zap.String("connection_id", conn.Id), zap.Int64("installation_id", id), zap.Error(derr))
		}
		return nil, err
	}
	return inst, nil
}

// onAccount refuses an installation that is not on the connection's
// account: its login (in any case), its kind, and its id when the record
// knows it (an enterprise's is learnt from the installation).
func onAccount(conn *registryv1.Connection, inst *ghInstallation) error {
	want := conn.GetAccount()
	kind := accountKinds[inst.TargetType]
	if !inst.Account.is(want.GetLogin()) || kind != want.GetKind() || (want.GetId() != 0 && inst.Account.ID != want.GetId()) {
		return refusef("installation %d is on %s, not on the connection's account %s", inst.ID,
			describe(kind, inst.Account.name(), inst.Account.ID), describe(want.GetKind(), want.GetLogin(), want.GetId()))
	}
	return nil
}

// ConnectExistingApp imports an existing App's key, finds its installation
// on the connection's account, and connects.
func (c *Connector) ConnectExistingApp(ctx context.Context, conn *registryv1.Connection, appID int64, pem []byte, clientSecret string, ch Change) (*registryv1.Connection, error) {
	if err := mayConnectExistingApp(conn); err != nil {
		return nil, err
	}
	key := keyName(conn.Id)
	if err := c.Transit.DeleteKey(ctx, key); err != nil {
		return nil, err
	}
	if _, err := c.Transit.ImportKey(ctx, key, pem); err != nil {
		return nil, refusef("the private key could not be imported (not an RSA private key in PEM?)")
	}
	fail := func(err error) (*registryv1.Connection, error) {
		// Leave no key behind for an App we did not connect.
		if derr := c.Transit.DeleteKey(context.WithoutCancel(ctx), key); derr != nil {
			logging.FromContext(ctx).Warn("deleting the key of an App not connected", zap.String("key", key), zap.Error(derr))
		}
		return nil, err
	}
	jwt, err := c.appJWT(ctx, appID, key, 0)
	if err != nil {
		return fail(err)
	}
	var app ghApp
	if err := c.call(ctx, jwt, http.MethodGet, "app", &app); err != nil || app.ID != appID {
		return fail(refusef("GitHub.com does not accept this key for App %d", appID))
	}
	path := "orgs/" + url.PathEscape(conn.Account.GetLogin()) + "/installation"
	if conn.Account.GetKind() == registryv1.AccountKind_ACCOUNT_KIND_ENTERPRISE {
		path = "enterprises/" + url.PathEscape(conn.Account.GetLogin()) + "/installation"
	}
	inst := &ghInstallation{}
	if err := c.call(ctx, jwt, http.MethodGet, path, inst); err != nil {
		return fail(refusef("App %d is not installed on %s", appID, conn.Account.GetLogin()))
	}
	if err := onAccount(conn, inst); err != nil {
		return fail(err)
	}
	rec := &registryv1.GitHubApp{AppId: appID, Slug: app.Slug, ClientId: app.ClientID, Permissions: inst.Permissions}
	if clientSecret != "" {
		if rec.ClientSecretCiphertext, err = c.Transit.Encrypt(ctx, vaulttransit.SecretsKey, []byte(clientSecret)); err != nil {
			return fail(err)
		}
	}
	connected := withAccountID(connectExistingApp(rec,
		c.newTransitKey(conn.Id), inst.ID), inst.Account.ID)
	out, err := c.take(ctx, conn.Id, conn.Etag, connected, ch)
	if err != nil {
		return fail(err)
	}
	return out, nil
}

// RotateAppKey imports a new key version, checks GitHub accepts it, then
// makes it the only version in use and retires the older ones in Vault.
func (c *Connector) RotateAppKey(ctx context.Context, conn *registryv1.Connection, pem []byte, ch Change) (*registryv1.Connection, error) {
	if err := mayRotateKey(conn); err != nil {
		return nil, err
	}
	key := keyName(conn.Id)
	version, _, err := c.Transit.ImportKeyVersion(ctx, key, pem)
	if err != nil {
		return nil, refusef("the new private key could not be imported")
	}
	jwt, err := c.appJWT(ctx, conn.App.GetAppId(), key, version)
	if err != nil {
		return nil, err
	}
	var app ghApp
	if err := c.call(ctx, jwt, http.MethodGet, "app", &app); err != nil || app.ID != conn.App.GetAppId() {
		return nil, refusef("GitHub.com does not accept the new key (version %d): use a key generated in the App's settings on GitHub.com", version)
	}
	out, err := c.take(ctx, conn.Id, "", rotateAppKey(int32(version)), ch) //nolint:gosec // G115: at most vaulttransit.MaxKeyVersion
	if err != nil {
		return nil, err
	}
	if err := c.Transit.RetireVersionsBelow(ctx, key, version); err != nil {
		return nil, err
	}
	return out, nil
}
