// Package vaultauth gives a ghconnect service a Vault login that stays
// valid: AppRole (role_id and secret_id files) renewed ahead of expiry with
// vault/api's LifetimeWatcher and logged in again when renewal stops, or a
// token file kept fresh by someone else (Vault Agent), re-read when it
// changes. A call refused with 403 may ask for a new login at once
// (Refresh), so a revoked token costs at most the call that found out.
package vaultauth

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ghconnect/ghconnect/pkg/config"
	"github.com/ghconnect/ghconnect/pkg/tracing"
	vault "github.com/hashicorp/vault/api"
	"go.uber.org/zap"
)

// Flags are the Vault connection settings every service that uses Vault
// shares. Secrets are files.
type Flags struct {
	Addr string
	// AppRole: both files, read at every login so they can be replaced.
	RoleIDFile   string
	SecretIDFile string
	AppRoleMount string
	// TokenFile holds a token kept fresh by someone else (Vault Agent's
	// sink); it is re-read when it changes.
	TokenFile string
	// CACert verifies Vault's TLS certificate (empty: system roots).
	CACert string
}

// RegisterFlags binds f to fs; defaultAddr is the -vault-addr default.
func (f *Flags) RegisterFlags(fs *flag.FlagSet, defaultAddr string) {
	fs.StringVar(&f.Addr, "vault-addr", defaultAddr, "Vault address")
	fs.StringVar(&f.RoleIDFile, "vault-role-id-file", "", "file holding the AppRole role_id (with -vault-secret-id-file)")
	fs.StringVar(&f.SecretIDFile, "vault-secret-id-file", "", "file holding the AppRole secret_id")
	fs.StringVar(&f.AppRoleMount, "vault-approle-mount", "approle", "path of Vault's AppRole auth method")
	fs.StringVar(&f.TokenFile, "vault-token-file", "", "file holding a Vault token kept fresh elsewhere (e.g. Vault Agent), instead of AppRole")
	fs.StringVar(&f.CACert, "vault-ca-cert", "", "PEM file of the CA that signed Vault's TLS certificate")
}

// Validate checks that exactly one way of logging in is configured.
func (f *Flags) Validate() error {
	appRole := f.RoleIDFile != "" || f.SecretIDFile != ""
	switch {
	case f.Addr == "":
		return errors.New("-vault-addr is required")
	case appRole && f.TokenFile != "":
		return errors.New("give either -vault-role-id-file/-vault-secret-id-file or -vault-token-file, not both")
	case appRole && (f.RoleIDFile == "" || f.SecretIDFile == ""):
		return errors.New("AppRole needs both -vault-role-id-file and -vault-secret-id-file")
	case !appRole && f.TokenFile == "":
		return errors.New("Vault login: give -vault-role-id-file and -vault-secret-id-file (AppRole), or -vault-token-file") //nolint:staticcheck // ST1005: Vault is a name
	}
	return nil
}

// Session is a Vault client whose token is kept valid. Its Client is shared
// by every caller.
type Session struct {
	api       *vault.Client
	login     func(ctx context.Context) (*vault.Secret, error) // nil: token file or fixed token
	what      string                                           // how it logs in, for messages
	tokenFile string
	log       *zap.Logger

	// PollEvery is how often a token file is checked for a new token.
	PollEvery time.Duration
	// RetryEvery bounds the wait between failed logins (Vault sealed or
	// away); the token in hand is used meanwhile.
	RetryEvery time.Duration

	mu         sync.Mutex
	secret     *vault.Secret // the last login (AppRole)
	lastForced time.Time
	refreshMu  sync.Mutex
	kick       chan struct{}
	logins     atomic.Int64

	m        *sessionMetrics
	healthMu sync.Mutex
	health   Health
}

func newClient(addr, caCert string) (*vault.Client, error) {
	cfg := vault.DefaultConfig()
	cfg.Address = addr
	// Retries are the caller's decision: a call that fails fast lets a
	// service serve from its cache and report Unavailable at once.
	cfg.MaxRetries = 0
	cfg.Timeout = 10 * time.Second
	if caCert != "" {
		if err := cfg.ConfigureTLS(&vault.TLSConfig{CACert: caCert}); err != nil {
			return nil, fmt.Errorf("vault: TLS: %w", err)
		}
	}
	// Wrapped last: vault/api configures TLS on its own *http.Transport.
	// The token travels in a header, which no span records.
	cfg.HttpClient.Transport = tracing.Transport(cfg.HttpClient.Transport)
	c, err := vault.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	// vault/api reads VAULT_TOKEN from the environment; a service uses only
	// the login it was configured with.
	c.ClearToken()
	return c, nil
}

// Login logs in as f says and checks the token works. Wrong credentials
// are an error that says which setting is wrong; the caller refuses to
// start.
func (f *Flags) Login(ctx context.Context, log *zap.Logger) (*Session, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	api, err := newClient(f.Addr, f.CACert)
	if err != nil {
		return nil, err
	}
	s := newSession(api, log)
	if f.TokenFile != "" {
		s.tokenFile = f.TokenFile
		s.what = "token file " + f.TokenFile
		tok, err := config.ReadSecret(f.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("vault token: %w", err)
		}
		api.SetToken(tok)
		if _, err := api.Auth().Token().LookupSelfWithContext(ctx); err != nil {
			return nil, fmt.Errorf("vault: the token in %s is not accepted by %s: %s", f.TokenFile, f.Addr, Reason(err))
		}
		return s, nil
	}
	mount := strings.Trim(f.AppRoleMount, "/")
	if mount == "" {
		mount = "approle"
	}
	s.what = "AppRole at auth/" + mount
	s.login = func(ctx context.Context) (*vault.Secret, error) {
		roleID, err := config.ReadSecret(f.RoleIDFile)
		if err != nil {
			return nil, fmt.Errorf("role_id: %w", err)
		}
		secretID, err := config.ReadSecret(f.SecretIDFile)
		if err != nil {
			return nil, fmt.Errorf("secret_id: %w", err)
		}
		// A client of its own: a login carries no token.
		lc, err := api.Clone()
		if err != nil {
			return nil, err
		}
		lc.ClearToken()
		sec, err := lc.Logical().WriteWithContext(ctx, "auth/"+mount+"/login", map[string]any{"role_id": roleID, "secret_id": secretID})
		if err != nil {
			return nil, err
		}
		if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
			return nil, errors.New("Vault returned no token") //nolint:staticcheck // ST1005: Vault is a name
		}
		return sec, nil
	}
	if err := s.relogin(ctx); err != nil {
		return nil, fmt.Errorf("vault: %s login at %s failed: %s (check -vault-role-id-file and -vault-secret-id-file)", s.what, f.Addr, Reason(err))
	}
	return s, nil
}

// WithToken is a session on a fixed token (tests and tools holding a token
// of their own); it never renews.
func WithToken(addr, token string) (*Session, error) {
	api, err := newClient(addr, "")
	if err != nil {
		return nil, err
	}
	api.SetToken(token)
	s := newSession(api, zap.NewNop())
	s.what = "fixed token"
	return s, nil
}

func newSession(api *vault.Client, log *zap.Logger) *Session {
	if log == nil {
		log = zap.NewNop()
	}
	return &Session{api: api, log: log, PollEvery: time.Second, RetryEvery: 500 * time.Millisecond, kick: make(chan struct{}, 1), m: newSessionMetrics()}
}

// Client is the Vault client to call with; its token changes as the
// session renews.
func (s *Session) Client() *vault.Client { return s.api }

// Logins counts successful logins (the first one included).
func (s *Session) Logins() int64 { return s.logins.Load() }

// relogin logs in and switches the client to the new token.
func (s *Session) relogin(ctx context.Context) error {
	sec, err := s.login(ctx)
	if err != nil {
		s.m.logins.WithLabelValues("error").Inc()
		return err
	}
	s.m.logins.WithLabelValues("ok").Inc()
	s.mu.Lock()
	s.secret = sec
	s.mu.Unlock()
	s.api.SetToken(sec.Auth.ClientToken)
	s.logins.Add(1)
	return nil
}

// Refresh is called after Vault refused stale (the token a call used) with
// 403: the token may have been revoked. It gets a new one (a login, or the
// token file read again) unless another caller already did, and reports
// whether the token changed, so the call is worth retrying. Forced logins
// are at most one a second: a 403 from a policy is not cured by logging in.
func (s *Session) Refresh(ctx context.Context, stale string) bool {
	if s.login == nil && s.tokenFile == "" {
		return false
	}
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	if s.api.Token() != stale {
		return true
	}
	if s.tokenFile != "" {
		s.readTokenFile()
		return s.api.Token() != stale
	}
	s.mu.Lock()
	recent := time.Since(s.lastForced) < time.Second
	if !recent {
		s.lastForced = time.Now()
	}
	s.mu.Unlock()
	if recent {
		return false
	}
	if err := s.relogin(ctx); err != nil {
		s.log.Warn("Vault login after a refused call failed", zap.String("login", s.what), zap.String("reason", Reason(err)))
		return false
	}
	s.log.Info("logged in to Vault again after a refused call", zap.String("login", s.what))
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return true
}

func (s *Session) readTokenFile() {
	tok, err := config.ReadSecret(s.tokenFile)
	if err != nil {
		s.log.Warn("reading the Vault token file", zap.String("file", s.tokenFile), zap.Error(err))
		return
	}
	if tok != s.api.Token() {
		s.api.SetToken(tok)
		s.log.Info("Vault token file changed; using the new token", zap.String("file", s.tokenFile))
	}
}

// Run keeps the token valid until ctx ends: AppRole tokens are renewed
// ahead of expiry and replaced by a new login when renewal stops (maximum
// TTL reached, token revoked, Vault sealed); a token file is re-read when
// it changes; Vault's health is checked every HealthEvery. Call it once,
// in its own goroutine.
func (s *Session) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go s.watchHealth(ctx, &wg)
	switch {
	case s.tokenFile != "":
		s.pollTokenFile(ctx)
	case s.login != nil:
		s.renewLoop(ctx)
	}
}

func (s *Session) pollTokenFile(ctx context.Context) {
	t := time.NewTicker(s.PollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.refreshMu.Lock()
			s.readTokenFile()
			s.refreshMu.Unlock()
		}
	}
}

func (s *Session) renewLoop(ctx context.Context) {
watch:
	for ctx.Err() == nil {
		s.mu.Lock()
		sec := s.secret
		s.mu.Unlock()
		w, err := s.api.NewLifetimeWatcher(&vault.LifetimeWatcherInput{Secret: sec, RenewBehavior: vault.RenewBehaviorErrorOnErrors})
		if err != nil {
			s.log.Error("cannot watch the Vault token", zap.Error(err))
			return
		}
		go w.Start()
		for {
			select {
			case <-ctx.Done():
				w.Stop()
				return
			case <-w.RenewCh():
				s.m.renewals.WithLabelValues("ok").Inc()
				s.log.Debug("renewed the Vault token")
			case <-s.kick:
				// Refresh logged in already: watch the new token.
				w.Stop()
				continue watch
			case err := <-w.DoneCh():
				w.Stop()
				reason := "token reached its maximum TTL"
				if err != nil {
					reason = "renewal failed: " + Reason(err)
					s.m.renewals.WithLabelValues("error").Inc()
				}
				s.log.Info("logging in to Vault again", zap.String("login", s.what), zap.String("why", reason))
				s.loginUntilDone(ctx)
				continue watch
			}
		}
	}
}

// loginUntilDone logs in, retrying every RetryEvery at most, while the old
// token keeps serving.
func (s *Session) loginUntilDone(ctx context.Context) {
	wait := 50 * time.Millisecond
	for {
		s.refreshMu.Lock()
		err := s.relogin(ctx)
		s.refreshMu.Unlock()
		if err == nil {
			// Drop a kick from a forced login meanwhile.
			select {
			case <-s.kick:
			default:
			}
			return
		}
		s.log.Warn("Vault login failed; retrying", zap.String("login", s.what), zap.String("reason", Reason(err)))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if wait *= 2; wait > s.RetryEvery {
			wait = s.RetryEvery
		}
	}
}

// IsPermissionDenied reports a 403 from Vault.
func IsPermissionDenied(err error) bool {
	var re *vault.ResponseError
	return errors.As(err, &re) && re.StatusCode == 403
}

// Reason is Vault's own words for a failure (never a secret), or the error.
func Reason(err error) string {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		if len(re.Errors) > 0 {
			return fmt.Sprintf("%s (HTTP %d)", strings.Join(re.Errors, "; "), re.StatusCode)
		}
		return fmt.Sprintf("HTTP %d", re.StatusCode)
	}
	return err.Error()
}
