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
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/githubapp"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
	"github.com/google/go-github/v60/github"
	"go.uber.org/zap"
)

// AppPermissions are the permissions the GitHub App asks for: what every
// Connect feature needs (the feature gate's catalog checks against it).
var AppPermissions = map[string]string{
	"contents": "read", "issues": "read", "metadata": "read", "vulnerability_alerts": "read",
	"members": "read", "organization_administration": "read",
}

// The steps of a disconnect, in order.
const (
	stepFeaturesOff         = "features_off"
	stepTokensRevoked       = "tokens_revoked"
	stepInstallationRemoved = "installation_removed"
	stepKeyDeleted          = "key_deleted"
)

const (
	stateManifest = "manifest"
	stateInstall  = "install"
	// secretsKey encrypts the App's client and webhook secrets.
	secretsKey = "ghconnect-secrets"
	keyPrefix  = "ghconnect-"
)

// Connector carries out enabling and disconnecting GitHub Connect: it talks
// to GitHub.com, to Vault transit, and (when configured) to the feature gate
// and the broker.
type Connector struct {
	Store   *Store
	Transit *vaulttransit.Client
	// GitHubAPI is the API base URL; GitHubWeb the site browsers go to
	// (https://github.com, or the emulator).
	GitHubAPI *url.URL
	GitHubWeb string
	HTTP      *http.Client
	// Broker and Gate are optional: without them their disconnect steps
	// are recorded as nothing to do.
	Broker brokerv1.TokenBrokerServiceClient
	Gate   featuregatev1.FeatureGateServiceClient
	Now    func() time.Time
	// OrphanGrace is how old a key of a PENDING connection without an App
	// must be before the reconciler deletes it (an enable may be under
	// way); 0 means 10 minutes.
	OrphanGrace time.Duration
	// running serialises disconnects of one connection in this process
	// (the RPC and the reconciler); across replicas the steps are
	// idempotent and the state checks decide.
	running sync.Map
	// CrashAfter, for crash tests only, ends the process right after the
	// named step ("key_imported", or a history action such as
	// "app_created" or "disconnect_step:tokens_revoked") is done.
	CrashAfter string
	// CrashHang, with CrashAfter, makes the process stop at the step
	// without exiting (the operation that reached it never returns), for
	// the test to kill -9 it: a stuck replica keeps its connections, and
	// with them its leases, until it is killed.
	CrashHang bool
}

// crashPoint ends the process if a crash test asked for it here.
func (c *Connector) crashPoint(step string) {
	if c.CrashAfter != "" && c.CrashAfter == step {
		if c.CrashHang {
			fmt.Fprintf(os.Stderr, "crash test: stopped after %s\n", step)
			select {}
		}
		fmt.Fprintf(os.Stderr, "crash test: exiting after %s\n", step)
		os.Exit(75)
	}
}

// take makes move m on connection id (see Store.Update); a crash test may
// end the process right after it.
func (c *Connector) take(ctx context.Context, id, etag string, m Move, ch Change) (*registryv1.Connection, error) {
	out, err := c.Store.Update(ctx, id, etag, m, ch)
	if err != nil {
		return nil, err
	}
	c.crashPoint(m.Action())
	return out, nil
}

// connectError is a refusal whose text is safe for the caller.
type connectError struct{ msg string }

func (e *connectError) Error() string { return e.msg }

func refusef(format string, args ...any) error { return &connectError{fmt.Sprintf(format, args...)} }

func (c *Connector) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Connector) github(auth string) *github.Client {
	gh := github.NewClient(c.HTTP)
	if auth != "" {
		gh = gh.WithAuthToken(auth)
	}
	gh.BaseURL = c.GitHubAPI
	return gh
}

// appJWT signs an App JWT for the connection's App with the newest key
// version, or version when positive.
func (c *Connector) appJWT(ctx context.Context, appID int64, key string, version int) (string, error) {
	tok, _, err := githubapp.JWT(ctx, c.Transit, key, version, appID, c.now())
	return tok, err
}

// signingVersion is the newest key version the record holds (0: the
// newest in Vault): a newer one imported in Vault signs only once GitHub.com
// accepts it.
func signingVersion(conn *registryv1.Connection) int {
	if v := conn.GetTransitKey().GetVersions(); len(v) > 0 {
		return int(v[len(v)-1])
	}
	return 0
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

func keyName(connID string) string { return keyPrefix + connID }

// newTransitKey is the record of a transit key just imported.
func (c *Connector) newTransitKey(name string) *registryv1.TransitKey {
	return &registryv1.TransitKey{Mount: c.Transit.Mount(), Name: name, Versions: []int32{1}}
}

// StartAppManifest returns the manifest to post and where.
func (c *Connector) StartAppManifest(ctx context.Context, conn *registryv1.Connection, callback *url.URL, perms map[string]string, ch Change) (*registryv1.StartAppManifestResponse, error) {
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
	manifest, _ := json.Marshal(map[string]any{
		"name": name, "url": "https://" + conn.ServerHostname, "description": "GitHub Connect for " + conn.ServerHostname,
		"redirect_url": callback.String(), "setup_url": setup.String(), "public": false,
		"default_permissions": perms, "default_events": []string{},
		"hook_attributes": map[string]any{"url": "https://" + conn.ServerHostname + "/connect/webhook", "active": false},
	})
	state, hash := newState()
	expires := c.now().Add(10 * time.Minute)
	if err := c.Store.PutState(ctx, hash, conn.Id, stateManifest, expires); err != nil {
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
	connID, err := c.Store.PeekState(ctx, hashState(state), stateManifest)
	if err != nil {
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
		var er *github.ErrorResponse
		if errors.As(err, &er) && er.Response.StatusCode < 500 {
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
	c.crashPoint("key_imported")
	if err := c.Transit.EnsureKey(ctx, secretsKey, "aes256-gcm96"); err != nil {
		return nil, "", err
	}
	clientSecret, err := c.Transit.Encrypt(ctx, secretsKey, []byte(conv.ClientSecret))
	if err != nil {
		return nil, "", err
	}
	webhookSecret, err := c.Transit.Encrypt(ctx, secretsKey, []byte(conv.WebhookSecret))
	if err != nil {
		return nil, "", err
	}
	app := &registryv1.GitHubApp{AppId: conv.ID, Slug: conv.Slug, ClientId: conv.ClientID, Permissions: conv.Permissions,
		ClientSecretCiphertext: clientSecret, WebhookSecretCiphertext: webhookSecret}
	out, err := c.take(ctx, conn.Id, conn.Etag, appCreated(app, c.newTransitKey(key)), ch)
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
	if err := c.Store.PutState(ctx, hash, connID, stateInstall, c.now().Add(time.Hour)); err != nil {
		return "", err
	}
	return strings.TrimSuffix(c.GitHubWeb, "/") + "/apps/" + url.PathEscape(slug) + "/installations/new?" + url.Values{"state": {state}}.Encode(), nil
}

// The few fields of GitHub's objects the connector reads.
type (
	ghAccount struct {
		Login string `json:"login"`
		Slug  string `json:"slug"`
	}
	appConversion struct {
		ID            int64             `json:"id"`
		Slug          string            `json:"slug"`
		ClientID      string            `json:"client_id"`
		ClientSecret  string            `json:"client_secret"`
		WebhookSecret string            `json:"webhook_secret"`
		PEM           string            `json:"pem"`
		Owner         ghAccount         `json:"owner"`
		Permissions   map[string]string `json:"permissions"`
	}
	ghApp struct {
		ID       int64  `json:"id"`
		Slug     string `json:"slug"`
		ClientID string `json:"client_id"`
	}
	ghInstallation struct {
		ID          int64             `json:"id"`
		Account     ghAccount         `json:"account"`
		Permissions map[string]string `json:"permissions"`
	}
)

func (a ghAccount) is(login string) bool {
	return strings.EqualFold(a.Login, login) || (a.Slug != "" && strings.EqualFold(a.Slug, login))
}

func (a ghAccount) name() string {
	if a.Login != "" {
		return a.Login
	}
	return a.Slug
}

// call makes one GitHub API call through go-github (its errors, rate-limit
// handling and headers) and decodes the answer into out.
func (c *Connector) call(ctx context.Context, auth, method, path string, out any) error {
	gh := c.github(auth)
	var body any
	if method == http.MethodPost {
		body = map[string]any{}
	}
	req, err := gh.NewRequest(method, path, body)
	if err != nil {
		return err
	}
	_, err = gh.Do(ctx, req, out)
	return err
}

// CompleteInstallation verifies the installation with an App JWT and
// connects.
func (c *Connector) CompleteInstallation(ctx context.Context, installationID int64, state string, ch Change) (*registryv1.Connection, error) {
	connID, err := c.Store.PeekState(ctx, hashState(state), stateInstall)
	if err != nil {
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
	out, err := c.take(ctx, conn.Id, "", markConnected(inst.ID), ch)
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
	jwt, err := c.appJWT(ctx, conn.App.GetAppId(), conn.TransitKey.GetName(), signingVersion(conn))
	if err != nil {
		return nil, err
	}
	inst := &ghInstallation{}
	if err := c.call(ctx, jwt, http.MethodGet, "app/installations/"+strconv.FormatInt(id, 10), inst); err != nil {
		var er *github.ErrorResponse
		if errors.As(err, &er) && er.Response.StatusCode == http.StatusNotFound {
			return nil, refusef("installation %d does not belong to the App", id)
		}
		return nil, fmt.Errorf("verifying installation: %w", err)
	}
	if !inst.Account.is(conn.Account.GetLogin()) {
		return nil, refusef("installation %d is on %s, not on the connection's account %s", id, inst.Account.name(), conn.Account.GetLogin())
	}
	return inst, nil
}

// ConnectExistingApp imports an existing App's key, finds its installation
// on the connection's account, and connects.
func (c *Connector) ConnectExistingApp(ctx context.Context, conn *registryv1.Connection, appID int64, pem []byte, ch Change) (*registryv1.Connection, error) {
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
		c.Transit.DeleteKey(context.WithoutCancel(ctx), key)
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
	connected := connectExistingApp(&registryv1.GitHubApp{AppId: appID, Slug: app.Slug, ClientId: app.ClientID, Permissions: inst.Permissions},
		c.newTransitKey(key), inst.ID)
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
	key := conn.TransitKey.GetName()
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
		return nil, refusef("GitHub.com does not accept the new key (version %d) yet: add its public key to the App, then rotate again", version)
	}
	out, err := c.take(ctx, conn.Id, "", rotateAppKey(int32(version)), ch)
	if err != nil {
		return nil, err
	}
	if err := c.Transit.RetireVersionsBelow(ctx, key, version); err != nil {
		return nil, err
	}
	return out, nil
}

// Disconnect runs (or resumes) the disconnect, recording each step.
func (c *Connector) Disconnect(ctx context.Context, id, reason string, ch Change) (*registryv1.Connection, error) {
	lock, _ := c.running.LoadOrStore(id, &sync.Mutex{})
	lock.(*sync.Mutex).Lock()
	defer lock.(*sync.Mutex).Unlock()
	conn, err := c.Store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if disconnected(conn) {
		return conn, nil
	}
	if begin := beginDisconnect(); begin.check(conn) == nil {
		why := ch
		why.Reason = reason
		if conn, err = c.take(ctx, id, "", begin, why); err != nil {
			return nil, err
		}
	}
	steps := []struct {
		name string
		run  func() error
	}{
		{stepFeaturesOff, func() error { return c.featuresOff(ctx, conn) }},
		{stepTokensRevoked, func() error { return c.revokeTokens(ctx, conn) }},
		{stepInstallationRemoved, func() error { return c.removeInstallation(ctx, conn) }},
		{stepKeyDeleted, func() error {
			if conn.TransitKey == nil {
				return nil
			}
			return c.Transit.DeleteKey(ctx, conn.TransitKey.GetName())
		}},
	}
	for _, s := range steps {
		if slices.Contains(conn.DisconnectSteps, s.name) {
			continue
		}
		if err := s.run(); err != nil {
			return nil, fmt.Errorf("disconnect step %s: %w", s.name, err)
		}
		next, err := c.take(ctx, id, "", disconnectStep(s.name), ch)
		if errors.Is(err, errAlreadyDone) {
			next, err = c.Store.Get(ctx, id)
		}
		if err != nil {
			return nil, err
		}
		conn = next
	}
	out, err := c.take(ctx, id, "", completeDisconnect(), ch)
	if errors.Is(err, errAlreadyDone) {
		return c.Store.Get(ctx, id)
	}
	return out, err
}

// featuresOff waits until the feature gate, which watches this registry,
// shows every feature off for the connection.
func (c *Connector) featuresOff(ctx context.Context, conn *registryv1.Connection) error {
	if c.Gate == nil {
		return nil
	}
	deadline := c.now().Add(15 * time.Second)
	for {
		st, err := c.Gate.GetSettings(ctx, &featuregatev1.GetSettingsRequest{ConnectionId: conn.Id})
		if err == nil {
			on := false
			for _, f := range st.GetSettings().GetFeatures() {
				on = on || f.GetEnabled()
			}
			if !on {
				return nil
			}
		}
		if c.now().After(deadline) {
			return errors.New("the feature gate still shows features on")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Connector) revokeTokens(ctx context.Context, conn *registryv1.Connection) error {
	if c.Broker == nil {
		return nil
	}
	_, err := c.Broker.RevokeConnectionTokens(ctx, &brokerv1.RevokeConnectionTokensRequest{ConnectionId: conn.Id})
	return err
}

// removeInstallation deletes the App's installation on GitHub.com; one
// already gone counts as removed.
func (c *Connector) removeInstallation(ctx context.Context, conn *registryv1.Connection) error {
	if conn.InstallationId == 0 || conn.App == nil {
		return nil
	}
	jwt, err := c.appJWT(ctx, conn.App.GetAppId(), conn.TransitKey.GetName(), signingVersion(conn))
	if errors.Is(err, vaulttransit.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = c.github(jwt).Apps.DeleteInstallation(ctx, conn.InstallationId)
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response.StatusCode == http.StatusNotFound {
		return nil
	}
	return err
}

// Reconcile finishes interrupted disconnects and deletes transit keys that
// belong to no connection (or to one that can no longer use them).
func (c *Connector) Reconcile(ctx context.Context) error {
	log := logging.FromContext(ctx)
	pending, err := c.Store.InState(ctx, stateDisconnecting)
	if err != nil {
		return err
	}
	for _, conn := range pending {
		if _, err := c.Disconnect(ctx, conn.Id, "", Change{Actor: "system:reconciler"}); err != nil {
			log.Warn("resuming a disconnect failed", zap.String("connection_id", conn.Id), zap.Error(err))
		}
	}
	keys, err := c.Transit.ListKeys(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		id, ok := strings.CutPrefix(k, keyPrefix)
		if !ok || k == secretsKey {
			continue
		}
		conn, err := c.Store.Get(ctx, id)
		if orphan := errors.Is(err, ErrNotFound) || (err == nil && !holdsKey(conn)); !orphan {
			continue
		}
		// An enable in progress imports the key a moment before it records
		// the App: only a key older than the grace period is an orphan.
		if info, err := c.Transit.Key(ctx, k); err != nil || info.Created.IsZero() || c.now().Sub(info.Created) < c.orphanGrace() {
			continue
		}
		if err := c.Transit.DeleteKey(ctx, k); err != nil {
			log.Warn("deleting an orphan transit key failed", zap.String("transit_key", k), zap.Error(err))
			continue
		}
		log.Info("deleted an orphan transit key", zap.String("transit_key", k))
	}
	return nil
}

func (c *Connector) orphanGrace() time.Duration {
	if c.OrphanGrace > 0 {
		return c.OrphanGrace
	}
	return 10 * time.Minute
}
