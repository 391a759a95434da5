// Package vaultdev is a development and test Vault: Vault's own server core
// (github.com/hashicorp/vault's vault.Core behind its vault/http handler)
// with the transit secrets engine, AppRole and token auth, ACL policies and
// the file audit device, on in-memory or file storage. It is initialised
// with one unseal key and unsealed on start, and its root token has the ID
// you choose, so tests and `make run` can set it up. Production uses a real
// Vault server.
package vaultdev

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
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
	// AuditFile, when set, enables Vault's file audit device writing there
	// (once: it is part of Vault's configuration afterwards).
	AuditFile string
	// NoDefaultMount skips mounting transit at "transit/" on first start.
	NoDefaultMount bool
	// LogOutput receives Vault's own log at error level (default stderr).
	LogOutput io.Writer
}

// Server is a vaultdev instance.
type Server struct {
	cfg       Config
	core      *vault.Core
	logger    hclog.Logger
	unsealKey []byte
	httpSrv   *http.Server
	listener  net.Listener
}

// builtins is the plugin catalog's list of built-in plugins: transit and
// AppRole, which is all ghconnect uses.
type builtins struct{}

func (builtins) factory(name string, t consts.PluginType) logical.Factory {
	switch {
	case name == "transit" && t == consts.PluginTypeSecrets:
		return transit.Factory
	case name == "approle" && t == consts.PluginTypeCredential:
		return approle.Factory
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
		return []string{"approle"}
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

// New builds the core on its storage; Start serves it and sets it up.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.RootToken == "" {
		return nil, errors.New("vaultdev: a root token is required")
	}
	if cfg.LogOutput == nil {
		cfg.LogOutput = os.Stderr
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "vault", Level: hclog.Error, Output: cfg.LogOutput})
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
		CredentialBackends: map[string]logical.Factory{"approle": approle.Factory},
		AuditBackends:      map[string]audit.Factory{"file": audit.NewFileBackend},
		DisableMlock:       true,
	})
	if err != nil {
		return nil, fmt.Errorf("vaultdev: %w", err)
	}
	return &Server{cfg: cfg, core: core, logger: logger}, nil
}

type unsealFile struct {
	UnsealKey string `json:"unseal_key"`
}

func (s *Server) unsealPath() string { return filepath.Join(s.cfg.DataDir, "unseal.json") }

// Start listens on addr (e.g. "127.0.0.1:0"), serves Vault's HTTP API, and
// initialises, unseals and sets the server up as needed.
func (s *Server) Start(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("vaultdev: %w", err)
	}
	s.listener = lis
	handler := vaulthttp.Handler.Handler(&vault.HandlerProperties{Core: s.core, ListenerConfig: &configutil.Listener{}})
	// Set up through the same handler in-process, before anyone else can
	// reach it: a client sees a Vault that is ready or nothing.
	if err := s.bootstrap(context.Background(), handler); err != nil {
		lis.Close()
		s.logger.SetLevel(hclog.Off)
		s.core.Shutdown()
		return err
	}
	s.httpSrv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go s.httpSrv.Serve(lis)
	return nil
}

// inProcess serves a client's requests with the handler directly.
type inProcess struct{ h http.Handler }

func (p inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	r.RemoteAddr = "127.0.0.1:1"
	p.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// bootstrap does through Vault's own API what an operator does once.
func (s *Server) bootstrap(ctx context.Context, h http.Handler) error {
	cfg := api.DefaultConfig()
	cfg.Address = s.URL()
	cfg.MaxRetries = 0
	cfg.HttpClient = &http.Client{Transport: inProcess{h}}
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
	fresh := !inited
	if fresh {
		res, err := sys.InitWithContext(ctx, &api.InitRequest{SecretShares: 1, SecretThreshold: 1})
		if err != nil {
			return fmt.Errorf("vaultdev: init: %w", err)
		}
		s.unsealKey, _ = base64.StdEncoding.DecodeString(res.KeysB64[0])
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
		if _, err := c.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{ID: s.cfg.RootToken, Policies: []string{"root"}, NoParent: true, DisplayName: "root"}); err != nil {
			return fmt.Errorf("vaultdev: creating the root token: %w", err)
		}
		c.SetToken(s.cfg.RootToken)
		if err := c.Auth().Token().RevokeTreeWithContext(ctx, res.RootToken); err != nil {
			return fmt.Errorf("vaultdev: %w", err)
		}
	} else {
		raw, err := os.ReadFile(s.unsealPath())
		if err != nil {
			return fmt.Errorf("vaultdev: the storage is initialised but its unseal key is missing: %w", err)
		}
		var uf unsealFile
		if err := json.Unmarshal(raw, &uf); err != nil {
			return fmt.Errorf("vaultdev: %s: %w", s.unsealPath(), err)
		}
		s.unsealKey, _ = base64.StdEncoding.DecodeString(uf.UnsealKey)
		if err := s.unseal(ctx, sys); err != nil {
			return err
		}
		c.SetToken(s.cfg.RootToken)
	}
	if fresh && !s.cfg.NoDefaultMount {
		if err := sys.MountWithContext(ctx, "transit", &api.MountInput{Type: "transit", Description: "default transit engine"}); err != nil {
			return fmt.Errorf("vaultdev: mounting transit: %w", err)
		}
	}
	if s.cfg.AuditFile != "" {
		devices, err := sys.ListAuditWithContext(ctx)
		if err != nil {
			return fmt.Errorf("vaultdev: listing audit devices (is -root-token the token this data was made with?): %w", err)
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
	// Mounts come up just after unsealing; wait for an active node.
	for range 100 {
		if h, err := sys.HealthWithContext(ctx); err == nil && h.Initialized && !h.Sealed && !h.Standby {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("vaultdev: not active after unsealing")
}

// UnsealKey is the key that unseals this Vault (base64), for sys/unseal.
func (s *Server) UnsealKey() string { return base64.StdEncoding.EncodeToString(s.unsealKey) }

// Addr is the listening address.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// URL is the address to give the Vault client (VAULT_ADDR).
func (s *Server) URL() string { return "http://" + s.Addr() }

// Close stops serving, letting requests in flight finish for up to 5 s,
// and shuts the core down (sealed).
func (s *Server) Close() error {
	if s.httpSrv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.httpSrv.Shutdown(ctx)
	s.httpSrv = nil
	// Shutting down seals the core; its background jobs complain about
	// that, to nobody's use.
	s.logger.SetLevel(hclog.Off)
	if serr := s.core.Shutdown(); serr != nil && err == nil {
		err = serr
	}
	return err
}
