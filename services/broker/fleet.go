package broker

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/dgryski/go-rendezvous"
	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/pkg/dial"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// A fleet is the brokers of one deployment as this one sees them. Each
// connection has one owner among the live brokers, by rendezvous hashing
// of the connection id over their addresses: the owner alone signs the
// connection's App JWTs and exchanges its scopes at GitHub.com; the others
// ask it (BrokerPeerService.FetchToken) on a miss and keep a copy of what
// it answers, so a scope costs one exchange and a JWT one signature
// however many brokers serve it. The owner also offers every token it
// exchanges to the others (OfferToken), so a scope's first request at
// any broker is usually a hit already. Losing a broker moves only the
// connections it owned; copies of their tokens stay valid where they are.
//
// The brokers are listed as callers find them: a static list, or
// dns:///name:port (the headless Service), looked up every
// FleetOptions.Resolve. A broker that fails a peer call is left out of
// the hashing for FleetOptions.DownFor, and at once by every broker that
// fails to reach it, so the survivors agree on the new owners without a
// round of agreement.
type fleet struct {
	self       string
	static     []string
	dnsHost    string
	dnsPort    string
	serverName string
	dialer     *dial.Dialer
	opts       FleetOptions

	// offered counts the offers sent (ok) or failed; dropped those a full
	// queue refused.
	offered func(ok bool)
	dropped func()

	mu      sync.Mutex
	listed  []string             // the brokers listed, self among them
	peers   map[string]*peer     // every other listed broker
	down    map[string]time.Time // address → left out until
	ring    *rendezvous.Rendezvous
	members []string // live, sorted: what ring hashes over
}

// peer is another broker of the fleet.
type peer struct {
	addr   string
	cc     *grpc.ClientConn
	client brokerv1.BrokerPeerServiceClient
	// offers wait here for the peer's sender; done stops it.
	offers chan *brokerv1.OfferTokenRequest
	done   chan struct{}
}

// offerQueue is how many offers may wait for one peer, and offerSenders
// how many calls carry them at once; more are dropped (the peer then
// fetches on its first miss). 2,000 exchanges at once on loopback
// overflowed one sender and 1,024 places.
const (
	offerQueue   = 4096
	offerSenders = 4
)

// sendOffers hands p the tokens offered to it, one call at a time, until
// p is closed.
func (p *peer) sendOffers(f *fleet) {
	for {
		select {
		case <-p.done:
			return
		case o := <-p.offers:
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := p.client.OfferToken(ctx, o)
			cancel()
			if f.offered != nil {
				f.offered(err == nil)
			}
		}
	}
}

func (p *peer) close() {
	close(p.done)
	_ = p.cc.Close() // a broker gone or this one stopping: nothing to report
}

// FleetOptions configure how a broker finds the others.
type FleetOptions struct {
	// Peers lists every broker (-broker-addr): "host:port,host:port" or
	// "dns:///name:port". Empty: this broker is alone.
	Peers string
	// Self is this broker's address as Peers lists it (-fleet-self; with
	// DNS: its pod's IP and the port).
	Self string
	// Resolve is how often a dns:/// list is looked up again; 0: 2 s.
	Resolve time.Duration
	// DownFor is how long a broker that failed a call stays out; 0: 5 s.
	DownFor time.Duration
	// TokenFile is the broker's bearer token for the others (without a
	// client certificate).
	TokenFile string
	// CallTimeout bounds a peer call; 0: 8 s (under the 10 s a caller
	// usually allows, so a silent owner leaves time to turn elsewhere).
	CallTimeout time.Duration
}

// newFleet lists the brokers; dialer reaches them (the broker's own
// client certificate, principal "broker").
func newFleet(opts FleetOptions, dialer *dial.Dialer) (*fleet, error) {
	if opts.Resolve <= 0 {
		opts.Resolve = 2 * time.Second
	}
	if opts.DownFor <= 0 {
		opts.DownFor = 5 * time.Second
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 8 * time.Second
	}
	if _, _, err := net.SplitHostPort(opts.Self); err != nil {
		return nil, fmt.Errorf("broker: -fleet-self %q: %w", opts.Self, err)
	}
	f := &fleet{self: opts.Self, dialer: dialer, opts: opts, peers: map[string]*peer{}, down: map[string]time.Time{}}
	if rest, ok := strings.CutPrefix(opts.Peers, "dns:///"); ok {
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return nil, fmt.Errorf("broker: -broker-addr %q: %w", opts.Peers, err)
		}
		f.dnsHost, f.dnsPort, f.serverName = host, port, host
	} else {
		for _, a := range strings.Split(opts.Peers, ",") {
			a = strings.TrimSpace(a)
			if _, _, err := net.SplitHostPort(a); err != nil {
				return nil, fmt.Errorf("broker: -broker-addr: %q: %w", a, err)
			}
			f.static = append(f.static, a)
		}
		if !slices.Contains(f.static, f.self) {
			return nil, fmt.Errorf("broker: -fleet-self %s is not in -broker-addr %s", f.self, opts.Peers)
		}
		f.setListed(f.static)
	}
	return f, nil
}

// run keeps a dns:/// list current until ctx ends, then closes the
// connections to the other brokers (a static list's too).
func (f *fleet) run(ctx context.Context) {
	defer f.close()
	if f.dnsHost == "" {
		<-ctx.Done()
		return
	}
	for {
		f.lookup(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(f.opts.Resolve):
		}
	}
}

// lookup resolves the dns:/// list once.
func (f *fleet) lookup(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, f.opts.Resolve)
	defer cancel()
	ips, err := net.DefaultResolver.LookupHost(lctx, f.dnsHost)
	if err != nil {
		if ctx.Err() == nil {
			logging.FromContext(ctx).Warn("looking up the other brokers", zap.String("name", f.dnsHost), zap.Error(err))
		}
		return
	}
	addrs := []string{f.self}
	for _, ip := range ips {
		addrs = append(addrs, net.JoinHostPort(ip, f.dnsPort))
	}
	f.setListed(addrs)
}

// setListed makes addrs the listed brokers, dialling new ones and closing
// those no longer listed.
func (f *fleet) setListed(addrs []string) {
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	f.mu.Lock()
	defer f.mu.Unlock()
	if slices.Equal(addrs, f.listed) {
		return
	}
	f.listed = addrs
	for _, a := range addrs {
		if a == f.self || f.peers[a] != nil {
			continue
		}
		cc, err := f.dialer.DialOne(a, f.serverName, f.opts.TokenFile)
		if err != nil {
			continue // an address newFleet checked, a token file the broker read at start: nothing to report
		}
		cc.Connect()
		p := &peer{addr: a, cc: cc, client: brokerv1.NewBrokerPeerServiceClient(cc),
			offers: make(chan *brokerv1.OfferTokenRequest, offerQueue), done: make(chan struct{})}
		for range offerSenders {
			go p.sendOffers(f)
		}
		f.peers[a] = p
	}
	for a, p := range f.peers {
		if !slices.Contains(addrs, a) {
			p.close()
			delete(f.peers, a)
		}
	}
	f.rehashLocked(time.Now())
}

// rehashLocked hashes over the listed brokers not left out: neither
// marked down nor, once that has passed, still failing to connect (gRPC
// keeps trying them in the background). Callers hold f.mu.
func (f *fleet) rehashLocked(now time.Time) {
	var live []string
	for _, a := range f.listed {
		if until, ok := f.down[a]; ok {
			if now.Before(until) {
				continue
			}
			delete(f.down, a)
		}
		if p := f.peers[a]; a != f.self && (p == nil || p.cc.GetState() == connectivity.TransientFailure) {
			continue
		}
		live = append(live, a)
	}
	if f.ring != nil && slices.Equal(live, f.members) {
		return
	}
	f.members = live
	f.ring = rendezvous.New(live, xxhash.Sum64String)
}

// owner is the broker that owns conn: nil when it is this one.
func (f *fleet) owner(conn string) *peer {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rehashLocked(time.Now())
	a := f.ring.Lookup(conn)
	if a == "" || a == f.self {
		return nil
	}
	return f.peers[a]
}

// markDown leaves p out of the hashing for DownFor: it failed a call.
func (f *fleet) markDown(ctx context.Context, p *peer, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, already := f.down[p.addr]; !already {
		logging.FromContext(ctx).Warn("a broker of the fleet failed a call; its connections move to the others for now",
			zap.String("peer", p.addr), zap.Duration("for", f.opts.DownFor), zap.Error(err))
	}
	f.down[p.addr] = time.Now().Add(f.opts.DownFor)
	f.rehashLocked(time.Now())
}

// alive reports whether addr is a live broker of the fleet.
func (f *fleet) alive(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, down := f.down[addr]
	if down || !slices.Contains(f.listed, addr) {
		return false
	}
	p := f.peers[addr]
	return addr == f.self || (p != nil && p.cc.GetState() != connectivity.TransientFailure)
}

// offer queues o for every other live broker.
func (f *fleet) offer(o *brokerv1.OfferTokenRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.peers {
		if !slices.Contains(f.members, p.addr) {
			continue
		}
		select {
		case p.offers <- o:
		default:
			if f.dropped != nil {
				f.dropped()
			}
		}
	}
}

// others are the other listed brokers.
func (f *fleet) others() []*peer {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*peer, 0, len(f.peers))
	for _, p := range f.peers {
		out = append(out, p)
	}
	return out
}

func (f *fleet) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for a, p := range f.peers {
		p.close()
		delete(f.peers, a)
	}
}

// errPeerDown wraps a peer call that did not reach the peer's broker
// code: the peer is gone, stopping or silent.
type errPeerDown struct{ err error }

func (e *errPeerDown) Error() string { return "a broker of the fleet is unreachable: " + e.err.Error() }
func (e *errPeerDown) Unwrap() error { return e.err }

// peerFailed tells a call that never reached the other broker (it is
// down: turn elsewhere) from that broker's own answer, which goes back
// to the caller as it is. The brokers' own Unavailable answers carry a
// retry delay (apierr.Retry); gRPC's, for a peer it cannot reach, do not.
func peerFailed(ctx context.Context, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return &errPeerDown{err}
	}
	switch st.Code() {
	case codes.Unavailable:
		for _, d := range st.Details() {
			if _, ok := d.(*errdetails.RetryInfo); ok {
				return err
			}
		}
		return &errPeerDown{err}
	case codes.DeadlineExceeded, codes.Canceled:
		if ctx.Err() == nil {
			return &errPeerDown{err}
		}
	}
	return err
}
