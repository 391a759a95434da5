package registry

import (
	"context"
	"fmt"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Defaults are the server's own hostname, version and license, as its
// configuration gives them: a connection is for this server, so the
// administrator only chooses the GitHub.com account, as on GHES.
type Defaults struct {
	Hostname string
	Version  string
	// License is the license file's content.
	License string
}

// SetDefaults makes CreateConnection fill in d where a request leaves a
// field empty; a default that is not valid is refused.
func (s *Server) SetDefaults(d Defaults) error {
	if d.Hostname != "" {
		if err := validate.Hostname(d.Hostname); err != nil {
			return fmt.Errorf("server hostname: %w", err)
		}
	}
	if d.Version != "" {
		if err := validate.ServerVersion(d.Version); err != nil {
			return fmt.Errorf("server version: %w", err)
		}
	}
	var lic *registryv1.License
	if d.License != "" {
		l, err := ParseLicense(d.License, s.issuers, s.now())
		if err != nil {
			return fmt.Errorf("license: %w", err)
		}
		lic = licenseRecord(l)
	}
	s.defaults, s.defaultLicense = d, lic
	return nil
}

func licenseRecord(l *VerifiedLicense) *registryv1.License {
	return &registryv1.License{PublicKey: l.PublicKey, Sha256: l.SHA256, CustomerName: l.CustomerName,
		Seats: l.Seats, ExpiresAt: timestamppb.New(l.ExpiresAt)}
}

// withDefaults is req with the server's defaults where it leaves a field
// empty; req itself is not changed.
func (s *Server) withDefaults(req *registryv1.CreateConnectionRequest) *registryv1.CreateConnectionRequest {
	d := s.defaults
	if (req.GetServerHostname() != "" || d.Hostname == "") && (req.GetServerVersion() != "" || d.Version == "") && (req.GetLicense() != "" || d.License == "") {
		return req
	}
	out := proto.Clone(req).(*registryv1.CreateConnectionRequest)
	if out.ServerHostname == "" {
		out.ServerHostname = d.Hostname
	}
	if out.ServerVersion == "" {
		out.ServerVersion = d.Version
	}
	if out.License == "" {
		out.License = d.License
	}
	return out
}

// GetServerDefaults implements the RPC.
func (s *Server) GetServerDefaults(ctx context.Context, _ *registryv1.GetServerDefaultsRequest) (*registryv1.GetServerDefaultsResponse, error) {
	return &registryv1.GetServerDefaultsResponse{ServerHostname: s.defaults.Hostname, ServerVersion: s.defaults.Version, License: s.defaultLicense}, nil
}
