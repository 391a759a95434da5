// Package vaultdev is a development and test Vault: Vault's own transit
// engine (github.com/hashicorp/vault/builtin/logical/transit) served behind
// the subset of Vault's HTTP API that ghconnect uses, so services talk to it
// with the official github.com/hashicorp/vault/api client unchanged.
// Production uses a real Vault server.
package vaultdev

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/builtin/logical/transit"
	"github.com/hashicorp/vault/sdk/logical"
)

// Version is reported by sys/health: the Vault release whose transit engine
// this is.
const Version = "1.18.5+vaultdev"

// Config configures a Server.
type Config struct {
	// RootToken is the only token accepted (X-Vault-Token).
	RootToken string
	// DataDir persists mounts and keys; empty keeps everything in memory.
	DataDir string
	// NoDefaultMount skips mounting transit at "transit/" on first start.
	NoDefaultMount bool
	// Logger receives one line per request (method, path, status), never
	// bodies or tokens. Nil discards.
	Logger *slog.Logger
}

// Server is a vaultdev instance.
type Server struct {
	cfg     Config
	storage logical.Storage

	mu     sync.RWMutex
	mounts map[string]*mount // by path, with trailing slash

	httpSrv  *http.Server
	listener net.Listener
}

type mount struct {
	Path        string `json:"path"`
	Type        string `json:"type"`
	Description string `json:"description"`
	Accessor    string `json:"accessor"`
	UUID        string `json:"uuid"`
	backend     logical.Backend
	view        logical.Storage
}

const mountTableKey = "core/mounts"

// New builds a server, restoring mounts from DataDir.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.RootToken == "" {
		return nil, errors.New("vaultdev: a root token is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var storage logical.Storage = &logical.InmemStorage{}
	if cfg.DataDir != "" {
		fs, err := newFileStorage(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		storage = fs
	}
	s := &Server{cfg: cfg, storage: storage, mounts: map[string]*mount{}}
	entry, err := storage.Get(ctx, mountTableKey)
	if err != nil {
		return nil, fmt.Errorf("vaultdev: reading mount table: %w", err)
	}
	if entry != nil {
		var table []*mount
		if err := json.Unmarshal(entry.Value, &table); err != nil {
			return nil, fmt.Errorf("vaultdev: mount table: %w", err)
		}
		for _, m := range table {
			if err := s.startBackend(ctx, m); err != nil {
				return nil, err
			}
		}
	} else if !cfg.NoDefaultMount {
		if err := s.mount(ctx, "transit/", "transit", "default transit engine"); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// startBackend runs a transit engine whose storage is the mount's own view,
// as Vault gives each mount.
func (s *Server) startBackend(ctx context.Context, m *mount) error {
	m.view = logical.NewStorageView(s.storage, "logical/"+m.UUID+"/")
	b, err := transit.Factory(ctx, &logical.BackendConfig{
		StorageView: m.view,
		Logger:      hclog.NewNullLogger(),
		System: &logical.StaticSystemView{
			DefaultLeaseTTLVal: 768 * time.Hour,
			MaxLeaseTTLVal:     768 * time.Hour,
			VersionString:      Version,
		},
		Config: map[string]string{},
	})
	if err != nil {
		return fmt.Errorf("vaultdev: starting transit at %s: %w", m.Path, err)
	}
	m.backend = b
	s.mounts[m.Path] = m
	return nil
}

func (s *Server) saveMountTable(ctx context.Context) error {
	table := make([]*mount, 0, len(s.mounts))
	for _, m := range s.mounts {
		table = append(table, m)
	}
	sort.Slice(table, func(i, j int) bool { return table[i].Path < table[j].Path })
	raw, err := json.Marshal(table)
	if err != nil {
		return err
	}
	return s.storage.Put(ctx, &logical.StorageEntry{Key: mountTableKey, Value: raw})
}

func (s *Server) mount(ctx context.Context, path, typ, desc string) error {
	m := &mount{Path: path, Type: typ, Description: desc, Accessor: "transit_" + randomID()[:8], UUID: randomID()}
	if err := s.startBackend(ctx, m); err != nil {
		return err
	}
	return s.saveMountTable(ctx)
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves until Close.
func (s *Server) Start(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("vaultdev: %w", err)
	}
	s.listener = lis
	s.httpSrv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.httpSrv.Serve(lis)
	return nil
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// URL is the address to give the Vault client (VAULT_ADDR).
func (s *Server) URL() string { return "http://" + s.Addr() }

// Close stops serving, letting requests in flight finish for up to 5 s.
func (s *Server) Close() error {
	if s.httpSrv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.httpSrv.Shutdown(ctx)
}
