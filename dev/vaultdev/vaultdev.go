// Package vaultdev is a development and test Vault: Vault's own server core
// (github.com/hashicorp/vault's vault.Core behind its vault/http handler)
// with the transit secrets engine, AppRole, Kubernetes and token auth, ACL
// policies and the file audit device, on in-memory or file storage. It is
// initialised with one unseal key and unsealed when it is made, and its
// root token has the ID you choose, so tests and `make run` can set it up.
// Production uses a real Vault server.
package vaultdev

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	kubeauth "github.com/hashicorp/vault-plugin-auth-kubernetes"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/audit"
	"github.com/hashicorp/vault/builtin/credential/approle"
	"github.com/hashicorp/vault/builtin/logical/transit"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/internalshared/configutil"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/physical"
	"github.com/hashicorp/vault/sdk/physical/file"
	"github.com/hashicorp/vault/sdk/physical/inmem"
	"github.com/hashicorp/vault/vault"
)

// Version is the Vault release whose core this is.
const Version = "1.19.0"

// Config configures a Server.
type Config struct {
	// RootToken is the ID of the root token (required). It is made once,
	// on first start, and lives in Vault's storage.
	RootToken string
	// DataDir keeps Vault's storage (storage/) and the unseal key
	// (unseal.json, mode 600) across restarts; empty keeps everything in
	// memory.
	DataDir string
	// AuditFile, when set, enables Vault's file audit device writing there,
	// unless an audit device is enabled already (it is part of Vault's
	// stored configuration, so it stays on across restarts).
	AuditFile string
	// NoDefaultMount skips mounting transit at "transit/" on first start.
	NoDefaultMount bool
	// Logger receives Vault's own log, warnings and errors only. Nil: text
	// lines on stderr.
	Logger *slog.Logger
}

// Server is a vaultdev instance.
type Server struct {
	cfg       Config
	core      *vault.Core
	handler   http.Handler
	logger    hclog.Logger
	quiet     *atomic.Bool
	unsealKey []byte

	mu       sync.Mutex
	listener net.Listener
	httpSrv  *http.Server
	closed   bool
}

// builtins is the plugin catalog's list of built-in plugins: transit,
// AppRole and Kubernetes (Vault Agent's login in a cluster), which is all
// ghconnect uses. Vault's core asks it whenever a secrets engine or auth
// method is mounted.
type builtins struct{}

func (builtins) factory(name string, t consts.PluginType) logical.Factory {
	switch {
	case name == "transit" && t == consts.PluginTypeSecrets:
		return transit.Factory
	case name == "approle" && t == consts.PluginTypeCredential:
		return approle.Factory
	case name == "kubernetes" && t == consts.PluginTypeCredential:
		return kubeauth.Factory
	}
	return nil
}

func (b builtins) Contains(name string, t consts.PluginType) bool { return b.factory(name, t) != nil }

func (b builtins) Get(name string, t consts.PluginType) (func() (interface{}, error), bool) {
	f := b.factory(name, t)
	if f == nil {
		return nil, false
	}
	return func() (interface{}, error) { return f, nil }, true
}

func (builtins) Keys(t consts.PluginType) []string {
	switch t {
	case consts.PluginTypeSecrets:
		return []string{"transit"}
	case consts.PluginTypeCredential:
		return []string{"approle", "kubernetes"}
	}
	return nil
}

func (b builtins) DeprecationStatus(name string, t consts.PluginType) (consts.DeprecationStatus, bool) {
	if b.Contains(name, t) {
		return consts.Supported, true
	}
	return consts.Unknown, false
}

func (builtins) IsBuiltinEntPlugin(string, consts.PluginType) bool { return false }

// slogSink hands Vault's warnings and errors to a slog.Logger.
type slogSink struct {
	l     *slog.Logger
	quiet *atomic.Bool
}

func (s slogSink) Accept(name string, level hclog.Level, msg string, args ...interface{}) {
	if level < hclog.Warn || level == hclog.Off || s.quiet.Load() {
		return
	}
	lvl := slog.LevelWarn
	if level >= hclog.Error {
		lvl = slog.LevelError
	}
	s.l.Log(context.Background(), lvl, msg, append([]any{"logger", name}, args...)...)
}

func newLogger(l *slog.Logger, quiet *atomic.Bool) hclog.Logger {
	opts := &hclog.LoggerOptions{Name: "vault", Level: hclog.Warn, Output: os.Stderr}
	if l == nil {
		return hclog.New(opts)
	}
	opts.Output = io.Discard
	il := hclog.NewInterceptLogger(opts)
	il.RegisterSink(slogSink{l: l, quiet: quiet})
	return il
}

// New builds Vault's core on its storage and makes it ready: on first
// start it initialises it (one unseal key), unseals it, makes the root
// token and mounts transit; on a restart with the same DataDir it unseals
// it with the stored key. All of it goes through Vault's own HTTP handler,
// in-process: nothing listens until Start.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.RootToken == "" {
		return nil, errors.New("vaultdev: a root token is required")
	}
	quiet := new(atomic.Bool)
	logger := newLogger(cfg.Logger, quiet)
	var backend physical.Backend
	var err error
	if cfg.DataDir == "" {
		backend, err = inmem.NewInmem(nil, logger)
	} else {
		dir := filepath.Join(cfg.DataDir, "storage")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("vaultdev: %w", err)
		}
		backend, err = file.NewFileBackend(map[string]string{"path": dir}, logger)
	}
	if err != nil {
		return nil, fmt.Errorf("vaultdev: storage: %w", err)
	}
	core, err := vault.NewCore(&vault.CoreConfig{
		Physical:           backend,
		Logger:             logger,
		BuiltinRegistry:    builtins{},
		LogicalBackends:    map[string]logical.Factory{"transit": transit.Factory},
		CredentialBackends: map[string]logical.Factory{"approle": approle.Factory, "kubernetes": kubeauth.Factory},
		AuditBackends:      map[string]audit.Factory{"file": audit.NewFileBackend},
		DisableMlock:       true,
	})
	if err != nil {
		return nil, fmt.Errorf("vaultdev: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		core:    core,
		handler: vaulthttp.Handler.Handler(&vault.HandlerProperties{Core: core, ListenerConfig: &configutil.Listener{}}),
		logger:  logger,
		quiet:   quiet,
	}
	if err := s.bootstrap(ctx); err != nil {
		_ = s.shutdownCore() // the failed bootstrap is the error to report
		return nil, err
	}
	return s, nil
}

// inProcess serves a client's requests with the handler directly, shaped
// the way net/http's server hands them over.
type inProcess struct{ h http.Handler }

func (p inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	if r.Body == nil {
		r.Body = http.NoBody
	}
	r.RemoteAddr = "127.0.0.1:1"
	r.RequestURI = r.URL.RequestURI()
	rec := httptest.NewRecorder()
	p.h.ServeHTTP(rec, r)
	res := rec.Result()
	res.Request = req
	return res, nil
}

type unsealFile struct {
	UnsealKey string `json:"unseal_key"`
}

func (s *Server) unsealPath() string { return filepath.Join(s.cfg.DataDir, "unseal.json") }

// bootstrap does through Vault's own API what an operator does once, and
// what a restart needs.
func (s *Server) bootstrap(ctx context.Context) error {
	cfg := api.DefaultConfig()
	cfg.Address = "http://vaultdev.in-process"
	cfg.MaxRetries = 0
	cfg.HttpClient = &http.Client{Transport: inProcess{s.handler}}
	c, err := api.NewClient(cfg)
	if err != nil {
		return err
	}
	c.ClearToken()
	sys := c.Sys()
	inited, err := sys.InitStatusWithContext(ctx)
	if err != nil {
		return fmt.Errorf("vaultdev: init status: %w", err)
	}
	if !inited {
		res, err := sys.InitWithContext(ctx, &api.InitRequest{SecretShares: 1, SecretThreshold: 1})
		if err != nil {
			return fmt.Errorf("vaultdev: init: %w", err)
		}
		if s.unsealKey, err = base64.StdEncoding.DecodeString(res.KeysB64[0]); err != nil {
			return fmt.Errorf("vaultdev: init: unseal key: %w", err)
		}
		if s.cfg.DataDir != "" {
			raw, _ := json.Marshal(unsealFile{UnsealKey: res.KeysB64[0]})
			if err := os.WriteFile(s.unsealPath(), raw, 0o600); err != nil {
				return fmt.Errorf("vaultdev: %w", err)
			}
		}
		if err := s.unseal(ctx, sys); err != nil {
			return err
		}
		// The root token gets the ID asked for, as Vault's dev mode does;
		// the generated one is revoked.
		c.SetToken(res.RootToken)
		if _, err := c.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
			ID: s.cfg.RootToken, Policies: []string{"root"}, NoParent: true, NoDefaultPolicy: true, DisplayName: "root",
		}); err != nil {
			return fmt.Errorf("vaultdev: creating the root token: %w", err)
		}
		if err := c.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
			return fmt.Errorf("vaultdev: revoking the generated root token: %w", err)
		}
		c.SetToken(s.cfg.RootToken)
		if !s.cfg.NoDefaultMount {
			if err := sys.MountWithContext(ctx, "transit", &api.MountInput{Type: "transit", Description: "default transit engine"}); err != nil {
				return fmt.Errorf("vaultdev: mounting transit: %w", err)
			}
		}
	} else {
		if s.cfg.DataDir == "" {
			return errors.New("vaultdev: in-memory storage is already initialised")
		}
		raw, err := os.ReadFile(s.unsealPath())
		if err != nil {
			return fmt.Errorf("vaultdev: the storage is initialised but its unseal key is missing: %w", err)
		}
		var uf unsealFile
		if err := json.Unmarshal(raw, &uf); err != nil {
			return fmt.Errorf("vaultdev: %s: %w", s.unsealPath(), err)
		}
		if s.unsealKey, err = base64.StdEncoding.DecodeString(uf.UnsealKey); err != nil {
			return fmt.Errorf("vaultdev: %s: %w", s.unsealPath(), err)
		}
		if err := s.unseal(ctx, sys); err != nil {
			return err
		}
		c.SetToken(s.cfg.RootToken)
		// A different root token than the data was made with would leave
		// nobody able to administer it; say so now rather than with 403s.
		if _, err := c.Auth().Token().LookupSelfWithContext(ctx); err != nil {
			var re *api.ResponseError
			if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
				return fmt.Errorf("vaultdev: the root token given is not the one %s was made with", s.cfg.DataDir)
			}
			return fmt.Errorf("vaultdev: looking up the root token: %w", err)
		}
	}
	if s.cfg.AuditFile != "" {
		devices, err := sys.ListAuditWithContext(ctx)
		if err != nil {
			return fmt.Errorf("vaultdev: listing audit devices: %w", err)
		}
		if len(devices) == 0 {
			if err := sys.EnableAuditWithOptionsWithContext(ctx, "file", &api.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": s.cfg.AuditFile}}); err != nil {
				return fmt.Errorf("vaultdev: enabling the file audit device: %w", err)
			}
		}
	}
	return nil
}

func (s *Server) unseal(ctx context.Context, sys *api.Sys) error {
	st, err := sys.UnsealWithContext(ctx, base64.StdEncoding.EncodeToString(s.unsealKey))
	if err != nil {
		return fmt.Errorf("vaultdev: unseal: %w", err)
	}
	if st.Sealed {
		return errors.New("vaultdev: still sealed after the unseal key")
	}
	// Wait for the node to report itself active (mounts loaded).
	for range 250 {
		if h, err := sys.HealthWithContext(ctx); err == nil && h.Initialized && !h.Sealed && !h.Standby {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return errors.New("vaultdev: not active after unsealing")
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves Vault's HTTP API
// there until Close.
func (s *Server) Start(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("vaultdev: closed")
	}
	if s.listener != nil {
		return errors.New("vaultdev: already started")
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("vaultdev: %w", err)
	}
	s.listener = lis
	s.httpSrv = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.httpSrv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("vaultdev: serving stopped", "error", err)
		}
	}()
	return nil
}

// UnsealKey is the key that unseals this Vault (base64), for sys/unseal.
func (s *Server) UnsealKey() string { return base64.StdEncoding.EncodeToString(s.unsealKey) }

// Addr is the listening address ("" before Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// URL is the address to give the Vault client (VAULT_ADDR).
func (s *Server) URL() string { return "http://" + s.Addr() }

// Close stops serving, letting requests in flight finish for up to 5 s,
// and shuts the core down (sealed). It may be called more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = s.httpSrv.Shutdown(ctx)
	}
	if serr := s.shutdownCore(); serr != nil && err == nil {
		err = serr
	}
	return err
}

func (s *Server) shutdownCore() error {
	// Shutting down seals the core; its background jobs complain about
	// that, to nobody's use.
	s.quiet.Store(true)
	s.logger.SetLevel(hclog.Off)
	return s.core.Shutdown()
}
