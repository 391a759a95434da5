package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/apierr"
	"github.com/ghconnect/ghconnect/pkg/validate"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Defaults are the server's own hostname, version and license, as its
// configuration gives them: a connection is for this server, so the
// administrator only chooses the GitHub.com account, as on GHES. Every
// connection records Hostname and Version; License is used when a request
// brings none.
type Defaults struct {
	Hostname string
	Version  string
	// License is the license file's content (empty: requests bring one).
	License string
}

// setDefaults takes the server's own settings; the hostname and version
// are required, and a value that is not valid is refused.
func (s *Server) setDefaults(d Defaults) error {
	if err := validate.Hostname(d.Hostname); err != nil {
		return fmt.Errorf("server hostname: %w", err)
	}
	if err := validate.ServerVersion(d.Version); err != nil {
		return fmt.Errorf("server version: %w", err)
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

// errNoServerSettings: a registry built without Defaults (its command
// refuses to start without -server-hostname and -server-version).
var errNoServerSettings = errors.New("this registry has no -server-hostname and -server-version: it cannot create connections")

// The field numbers server_hostname and server_version had in
// CreateConnectionRequest (reserved now).
const (
	removedHostnameField protowire.Number = 2
	removedVersionField  protowire.Number = 3
)

// checkRemovedFields refuses what a client built before server_hostname
// and server_version were removed still sends in them (unknown fields now)
// when it is not this server's own: such a client asked for a connection
// for another hostname or version, and must not silently get one for this
// server's. The server's own values, sent as such clients did, pass.
func (s *Server) checkRemovedFields(v *apierr.Violations, req *registryv1.CreateConnectionRequest) {
	b := req.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return
		}
		value := b[:n]
		b = b[n:]
		if typ != protowire.BytesType || (num != removedHostnameField && num != removedVersionField) {
			continue
		}
		text, _ := protowire.ConsumeBytes(value)
		switch got := string(text); {
		case num == removedHostnameField && got != "" && !strings.EqualFold(got, s.defaults.Hostname):
			v.Addf("server_hostname", "is this server's own, %s (-server-hostname); leave it out", s.defaults.Hostname)
		case num == removedVersionField && got != "" && got != s.defaults.Version:
			v.Addf("server_version", "is this server's own, %s (-server-version); leave it out", s.defaults.Version)
		}
	}
}

// GetServerDefaults implements the RPC.
func (s *Server) GetServerDefaults(_ context.Context, _ *registryv1.GetServerDefaultsRequest) (*registryv1.GetServerDefaultsResponse, error) {
	return &registryv1.GetServerDefaultsResponse{ServerHostname: s.defaults.Hostname, ServerVersion: s.defaults.Version, License: s.defaultLicense}, nil
}
