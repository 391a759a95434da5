// Package dial is the one way a ghconnect service calls another: mutual
// TLS with the service's own certificate (re-read when it changes), an
// optional bearer token from a secret file, round_robin across every
// replica behind an address, and a retry of calls refused as Unavailable
// (a replica going away).
package dial

import (
	// Our messages marshal without reflection, on every hop.
	_ "github.com/ghconnect/ghconnect/pkg/codec"

	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ghconnect/ghconnect/pkg/auth"
	"github.com/ghconnect/ghconnect/pkg/config"
	"github.com/ghconnect/ghconnect/pkg/tracing"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/dns"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
)

// gRPC's DNS resolver looks a name up again when a connection to one of
// its addresses drops, but by default at most every 30 s. A rolling update
// replaces every pod behind a headless Service in less than that, so a
// caller that learnt of the new pods only every 30 s could be left knowing
// none that still runs: here it may look again after 1 s.
func init() { dns.SetMinResolutionInterval(time.Second) }

// Flags are a service's outbound TLS settings, shared by every hop it
// dials: -dial-ca, -dial-cert, -dial-key.
type Flags struct {
	CA   string
	Cert string
	Key  string
}

// RegisterFlags binds f to fs.
func (f *Flags) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&f.CA, "dial-ca", "", "CA certificates (PEM) that sign the servers this service calls; set, every call to another ghconnect service uses TLS")
	fs.StringVar(&f.Cert, "dial-cert", "", "client certificate (PEM) presented to the services this one calls (its common name is this service's principal)")
	fs.StringVar(&f.Key, "dial-key", "", "private key of -dial-cert, in the same folder")
}

// Validate reports flags that do not go together.
func (f *Flags) Validate() error {
	if (f.Cert != "") != (f.Key != "") {
		return errors.New("-dial-cert and -dial-key go together")
	}
	if f.Cert != "" && f.CA == "" {
		return errors.New("-dial-cert needs -dial-ca")
	}
	return nil
}

// HasCert reports whether calls present a client certificate (which then
// names the caller, so a bearer token is optional).
func (f *Flags) HasCert() bool { return f.Cert != "" }

// ServiceConfig balances calls across every address a target resolves to
// and retries those refused as Unavailable: the replica that answered so
// went away or is stopping, and gRPC retries only calls whose replies it
// has not yet passed on. Calls that change state are safe to repeat
// (creation is idempotent by request id, disconnect by its recorded
// steps). Throttling stops the retries from multiplying the load while a
// whole service is unavailable (after 50 more failures than successes),
// but not when one replica of many dies under a burst of calls.
const ServiceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "retryThrottling": {"maxTokens": 100, "tokenRatio": 0.1},
  "methodConfig": [{
    "name": [{}],
    "retryPolicy": {
      "maxAttempts": 4,
      "initialBackoff": "0.05s",
      "maxBackoff": "0.5s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// Dialer dials other ghconnect services with the flags' TLS material.
type Dialer struct {
	creds credentials.TransportCredentials
	files *auth.TLSFiles
	opts  []grpc.DialOption
}

// Option is an extra dial option for tests (for example a stats handler
// that counts attempts).
type Option = grpc.DialOption

// New loads the TLS material the flags name (plaintext when they name
// none).
func New(f Flags, extra ...Option) (*Dialer, error) {
	d := &Dialer{creds: insecure.NewCredentials(), opts: append(tracing.DialOptions(), extra...)}
	if f.CA != "" {
		files, err := auth.LoadTLSFiles(f.Cert, f.Key, f.CA)
		if err != nil {
			return nil, fmt.Errorf("dial: %w", err)
		}
		d.files = files
		d.creds = credentials.NewTLS(auth.ClientTLS(files))
	}
	return d, nil
}

// Close stops following the TLS files.
func (d *Dialer) Close() {
	if d.files != nil {
		d.files.Close()
	}
}

// Dial connects (lazily) to the service at addr: "host:port",
// "dns:///host:port" (every address the name resolves to, looked up again
// as replicas come and go) or a comma-separated static list
// "host1:port1,host2:port2". With tokenFile, every call carries that
// bearer token.
func (d *Dialer) Dial(addr, tokenFile string) (*grpc.ClientConn, error) {
	if strings.TrimSpace(addr) == "" {
		return nil, errors.New("dial: empty address")
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(d.creds), grpc.WithDefaultServiceConfig(ServiceConfig),
		// A replica that comes back is connected to within 2 s.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 5 * time.Second}),
		grpc.WithChainUnaryInterceptor(awaitReady)}, d.opts...)
	if tokenFile != "" {
		token, err := config.ReadSecret(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(Bearer(token)))
	}
	target := addr
	if strings.Contains(addr, ",") {
		r, err := staticList(addr)
		if err != nil {
			return nil, err
		}
		target = r.Scheme() + ":///" + strings.ReplaceAll(addr, ",", "_")
		opts = append(opts, grpc.WithResolvers(r))
	}
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return cc, nil
}

// DialOne connects (lazily) to the one replica at addr ("ip:port"),
// verifying its certificate as serverName's (with TLS), every call with
// tokenFile's bearer token if set: a broker calling another of its fleet
// by address. Unlike Dial it neither retries nor waits for the
// replica to come back: a replica that cannot be reached fails the call
// at once (within a second's connection attempt), for the caller to turn
// elsewhere.
func (d *Dialer) DialOne(addr, serverName, tokenFile string) (*grpc.ClientConn, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(d.creds),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: time.Second}),
		grpc.WithDisableRetry()}, d.opts...)
	if serverName != "" {
		opts = append(opts, grpc.WithAuthority(serverName))
	}
	if tokenFile != "" {
		token, err := config.ReadSecret(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(Bearer(token)))
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return cc, nil
}

// ReadyWait bounds how long a unary call refused as Unavailable while no
// replica is connected waits for one to come back (a restart, a rollout of
// the only replica) before the caller sees Unavailable.
var ReadyWait = 10 * time.Second

// awaitReady re-sends a unary call refused as Unavailable while the
// connection has no ready replica, once one is ready again, for up to
// ReadyWait. An Unavailable from a connected replica (the service's own
// answer, such as Vault being sealed) is returned at once: gRPC's retry
// policy has already tried the others.
func awaitReady(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	deadline := time.Now().Add(ReadyWait)
	for status.Code(err) == codes.Unavailable && ctx.Err() == nil {
		st := cc.GetState()
		if st == connectivity.Ready || time.Now().After(deadline) {
			return err
		}
		cc.Connect()
		wctx, cancel := context.WithDeadline(ctx, deadline)
		for st != connectivity.Ready && cc.WaitForStateChange(wctx, st) {
			st = cc.GetState()
		}
		cancel()
		if st != connectivity.Ready {
			return err
		}
		err = invoker(ctx, method, req, reply, cc, opts...)
	}
	return err
}

var staticSeq atomic.Int64

// staticList resolves a comma-separated list to itself; each address is
// verified under its own host name.
func staticList(list string) (*manual.Resolver, error) {
	var state resolver.State
	for _, a := range strings.Split(list, ",") {
		a = strings.TrimSpace(a)
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("dial: %q in %q: %w", a, list, err)
		}
		state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a, ServerName: host}}})
	}
	r := manual.NewBuilderWithScheme(fmt.Sprintf("ghconnect-static-%d", staticSeq.Add(1)))
	r.InitialState(state)
	return r, nil
}

// Bearer sends a bearer token with every call.
type Bearer string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b Bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials:
// plaintext is allowed for development on loopback.
func (Bearer) RequireTransportSecurity() bool { return false }
