package auth

import (
	"errors"
	"flag"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Callers is how a service authenticates its callers: bearer tokens from a
// file (development, services without certificates) and, in production,
// mutual TLS client certificates.
type Callers struct {
	TokensFile        string
	TLSCert           string
	TLSKey            string
	ClientCA          string
	RequireClientCert bool
	// AuthzFile gives roles to principals (JSON Members); empty means
	// DefaultMembers.
	AuthzFile string
}

// RegisterFlags binds the fields to -tokens-file, -tls-cert, -tls-key,
// -client-ca and -require-client-cert.
func (c *Callers) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.TokensFile, "tokens-file", "", `file of "<principal> sha256:<hex>" lines: the bearer tokens accepted`)
	fs.StringVar(&c.TLSCert, "tls-cert", "", "server certificate (PEM, re-read when it changes); with -tls-key and -client-ca, callers authenticate by client certificate")
	fs.StringVar(&c.TLSKey, "tls-key", "", "server private key (PEM), in the folder of -tls-cert")
	fs.StringVar(&c.ClientCA, "client-ca", "", "CA certificates (PEM) that sign callers' client certificates (principal: the certificate's common name)")
	fs.BoolVar(&c.RequireClientCert, "require-client-cert", false, "refuse at the TLS handshake every caller without a client certificate signed by -client-ca")
	fs.StringVar(&c.AuthzFile, "authz-file", "", `roles of the callers (JSON {"principals": {name: [roles]}, "forwarders": {name: [roles]}}); default: each service by its name, "admin" as admin, the gateway forwarding admins, auditors and account holders (people on their own page)`)
}

// Validate reports flags that do not go together.
func (c *Callers) Validate() error {
	if (c.TLSCert != "") != (c.TLSKey != "") || (c.ClientCA != "" && c.TLSCert == "") {
		return errors.New("-tls-cert and -tls-key go together, and -client-ca needs them")
	}
	if c.RequireClientCert && c.ClientCA == "" {
		return errors.New("-require-client-cert needs -client-ca")
	}
	if c.TokensFile == "" && c.ClientCA == "" {
		return errors.New("-tokens-file or -client-ca is required: callers must authenticate")
	}
	return nil
}

// Load returns the guard (authentication and authorization) and the gRPC
// server options (TLS) the flags describe, and the TLS files to close when
// the server is done (nil without TLS; closing nil is a no-op).
func (c *Callers) Load() (*Guard, []grpc.ServerOption, *TLSFiles, error) {
	rules, err := LoadRules(c.AuthzFile)
	if err != nil {
		return nil, nil, nil, err
	}
	authn, opts, closer, err := c.loadAuthn()
	if err != nil {
		return nil, nil, nil, err
	}
	return &Guard{Authn: authn, Rules: rules}, opts, closer, nil
}

func (c *Callers) loadAuthn() (Authenticator, []grpc.ServerOption, *TLSFiles, error) {
	var authn Authenticator
	if c.TokensFile != "" {
		tokens, err := LoadTokenFile(c.TokensFile)
		if err != nil {
			return nil, nil, nil, err
		}
		authn = tokens
	}
	if c.TLSCert == "" {
		return authn, nil, nil, nil
	}
	files, err := LoadTLSFiles(c.TLSCert, c.TLSKey, c.ClientCA)
	if err != nil {
		return nil, nil, nil, err
	}
	if c.ClientCA != "" {
		authn = ClientCerts{Fallback: authn}
	}
	return authn, []grpc.ServerOption{grpc.Creds(credentials.NewTLS(ServerTLS(files, c.RequireClientCert)))}, files, nil
}
