package broker

import (
	"context"
	"errors"
	"sync"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/pkg/logging"
	"github.com/ghconnect/ghconnect/pkg/server"
	"github.com/google/go-github/v60/github"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// peerAnswer is another broker's refusal or failure, passed on to the
// caller as that broker gave it.
type peerAnswer struct{ st *status.Status }

func (e *peerAnswer) Error() string { return e.st.Message() }

// notHere is the owner's answer for a connection it does not know as
// CONNECTED yet (the registry's news reaches each broker on its own): the
// asking broker exchanges itself.
const notHere = "the connection is not CONNECTED on this broker"

// fill returns a shared grant for key, valid for minLife: this broker's
// own exchange when it owns the connection (or no owner can be reached),
// else a copy of the owner's.
func (b *Broker) fill(ctx context.Context, c *connInfo, sc scope, key string, minLife time.Duration) (*grant, error) {
	if g, done, err := b.viaOwner(ctx, c.id, key, minLife, ""); done {
		return g, err
	}
	return b.up.exchange(ctx, c, sc, key)
}

// exclusive returns an exclusive grant for caller, exchanged by the
// connection's owner, which keeps it for revocation.
func (b *Broker) exclusive(ctx context.Context, c *connInfo, sc scope, caller string) (*grant, error) {
	var buf [256]byte
	key := string(sc.appendKey(buf[:0], c.id, c.installationID))
	if g, done, err := b.viaOwner(ctx, c.id, key, 0, caller); done {
		return g, err
	}
	g, err := b.up.exchange(ctx, c, sc, "")
	if err != nil {
		return nil, err
	}
	g.exclusive, g.owner = true, caller
	b.track(g)
	return g, nil
}

// viaOwner asks the connection's owner for key's grant; done is false
// when this broker is the owner, or becomes it because every other it
// tried was unreachable, or the owner does not know the connection yet.
func (b *Broker) viaOwner(ctx context.Context, conn, key string, minLife time.Duration, exclusiveFor string) (g *grant, done bool, err error) {
	if b.fleet == nil {
		return nil, false, nil
	}
	for {
		p := b.fleet.owner(conn)
		if p == nil {
			return nil, false, nil
		}
		g, err := b.fetch(ctx, p, conn, key, minLife, exclusiveFor)
		var down *errPeerDown
		var answer *peerAnswer
		switch {
		case errors.As(err, &down):
			b.m.peerFetches.WithLabelValues("unreachable").Inc()
			b.fleet.markDown(ctx, p, err)
			continue
		case errors.As(err, &answer) && answer.st.Code() == codes.FailedPrecondition && answer.st.Message() == notHere:
			b.m.peerFetches.WithLabelValues("not_here").Inc()
			return nil, false, nil
		case err != nil:
			b.m.peerFetches.WithLabelValues("refused").Inc()
		default:
			b.m.peerFetches.WithLabelValues("ok").Inc()
			b.m.fetchCount.Add(1)
		}
		return g, true, err
	}
}

// fetch asks p for key's grant.
func (b *Broker) fetch(ctx context.Context, p *peer, conn, key string, minLife time.Duration, exclusiveFor string) (*grant, error) {
	cctx, cancel := context.WithTimeout(ctx, b.fleet.opts.CallTimeout)
	defer cancel()
	resp, err := p.client.FetchToken(cctx, &brokerv1.FetchTokenRequest{ConnectionId: conn, ScopeKey: key, MinLifetime: durationpb.New(minLife), ExclusiveCaller: exclusiveFor})
	if err != nil {
		if err = peerFailed(ctx, err); errors.As(err, new(*errPeerDown)) {
			return nil, err
		}
		return nil, &peerAnswer{status.Convert(err)}
	}
	if exclusiveFor != "" {
		key = ""
	}
	return grantFromResponse(resp.GetToken(), conn, key, p.addr), nil
}

// grantFromResponse is what a broker keeps of a token another issued.
func grantFromResponse(r *brokerv1.IssueTokenResponse, conn, key, from string) *grant {
	repos := make([]*github.Repository, 0, len(r.GetRepositories()))
	for _, rp := range r.GetRepositories() {
		repos = append(repos, &github.Repository{ID: github.Int64(rp.GetId()), FullName: github.String(rp.GetFullName())})
	}
	set, h := repoSet(repos)
	g := newGrant(r.GetToken(), set, h, conn, key)
	g.sha256, g.expires = fingerprintOf(r.GetToken()), r.GetExpireTime().AsTime().UnixNano()
	g.perms = internPerms(r.GetPermissions())
	g.selected = r.GetRepositorySelection() == "selected"
	g.exclusive, g.from = r.GetExclusive(), from
	return g
}

// revokeEverywhere revokes a connection's tokens on this broker and every
// other of the fleet (RevokeConnectionTokens): each revokes what it
// exchanged. A broker that cannot be reached is counted as failed once.
func (b *Broker) revokeEverywhere(ctx context.Context, conn string) (revoked, failed int) {
	revoked, failed = b.revokeConnection(ctx, conn)
	if b.fleet == nil {
		return revoked, failed
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range b.fleet.others() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, b.fleet.opts.CallTimeout)
			defer cancel()
			resp, err := p.client.RevokeHeldTokens(cctx, &brokerv1.RevokeHeldTokensRequest{ConnectionId: conn})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				logging.FromContext(ctx).Warn("another broker did not revoke the connection's tokens it holds; they expire within the hour",
					zap.String("peer", p.addr), zap.String("connection_id", conn), zap.Error(err))
				failed++
				return
			}
			revoked += int(resp.GetRevoked())
			failed += int(resp.GetFailed())
		}()
	}
	wg.Wait()
	return revoked, failed
}

// revokeAnywhere revokes an exclusive token for caller here, or on the
// broker of the fleet that issued it (RevokeToken).
func (b *Broker) revokeAnywhere(ctx context.Context, caller, token string) error {
	err := b.revokeToken(ctx, caller, token)
	if !errors.Is(err, errUnknownToken) || b.fleet == nil {
		return err
	}
	for _, p := range b.fleet.others() {
		cctx, cancel := context.WithTimeout(ctx, b.fleet.opts.CallTimeout)
		_, perr := p.client.RevokeHeldToken(cctx, &brokerv1.RevokeHeldTokenRequest{Caller: caller, Token: token})
		cancel()
		switch status.Code(perr) {
		case codes.OK:
			return nil
		case codes.NotFound:
			continue
		case codes.FailedPrecondition:
			return errSharedToken
		case codes.PermissionDenied:
			return errNotOwner
		}
		logging.FromContext(ctx).Warn("asking another broker to revoke a token", zap.String("peer", p.addr), zap.Error(perr))
	}
	return err
}

// signingStatusAnywhere is the signing status as the connection's owner,
// which signs its JWTs, sees it (this broker's own when it cannot be
// reached).
func (b *Broker) signingStatusAnywhere(ctx context.Context, conn string) (*brokerv1.GetSigningStatusResponse, error) {
	if b.fleet != nil {
		if p := b.fleet.owner(conn); p != nil {
			cctx, cancel := context.WithTimeout(ctx, b.fleet.opts.CallTimeout)
			defer cancel()
			resp, err := p.client.PeerSigningStatus(cctx, &brokerv1.PeerSigningStatusRequest{ConnectionId: conn})
			if err == nil {
				return resp.GetStatus(), nil
			}
			if perr := peerFailed(ctx, err); !errors.As(perr, new(*errPeerDown)) {
				return nil, err
			}
		}
	}
	return b.signingStatusResponse(conn)
}

// PeerServer implements the BrokerPeerService over a Broker.
type PeerServer struct {
	brokerv1.UnimplementedBrokerPeerServiceServer
	b *Broker
}

// Register adds the peer service to srv.
func (s *PeerServer) Register(srv *server.Server) {
	brokerv1.RegisterBrokerPeerServiceServer(srv.GRPC, s)
}

// FetchToken implements the RPC. The asking broker's policy allowed the
// scope; this one exchanges it itself, whoever it thinks the owner is
// (brokers whose views differ for a moment never send a scope round).
func (s *PeerServer) FetchToken(ctx context.Context, req *brokerv1.FetchTokenRequest) (*brokerv1.FetchTokenResponse, error) {
	b := s.b
	c, sc, err := b.peerScope(req.GetConnectionId(), req.GetScopeKey())
	if err != nil {
		return nil, err
	}
	b.m.peerServed.Inc()
	if who := req.GetExclusiveCaller(); who != "" {
		g, err := b.up.exchange(ctx, c, sc, "")
		if err != nil {
			return nil, upstreamStatus(ctx, err)
		}
		g.exclusive, g.owner = true, who
		b.track(g)
		return &brokerv1.FetchTokenResponse{Token: g.response()}, nil
	}
	minLife, key := req.GetMinLifetime().AsDuration(), req.GetScopeKey()
	if g := b.cache.get([]byte(key), minLife, b.now()); g != nil {
		return &brokerv1.FetchTokenResponse{Token: g.response()}, nil
	}
	g, err := b.shared(ctx, key, minLife, func(ctx context.Context) (*grant, error) { return b.up.exchange(ctx, c, sc, key) })
	if err != nil {
		return nil, upstreamStatus(ctx, err)
	}
	return &brokerv1.FetchTokenResponse{Token: g.response()}, nil
}

// peerScope is the connection and scope another broker's request names:
// the connection CONNECTED here, the key a scope of its installation.
func (b *Broker) peerScope(conn, key string) (*connInfo, scope, error) {
	c := b.conns.get(conn)
	if c == nil || !c.connected {
		return nil, scope{}, status.Error(codes.FailedPrecondition, notHere)
	}
	sc, ok := scopeOfKey(key)
	var buf [256]byte
	if !ok || string(sc.appendKey(buf[:0], c.id, c.installationID)) != key {
		return nil, scope{}, status.Error(codes.InvalidArgument, "scope_key is not a scope of the connection's installation")
	}
	return c, sc, nil
}

// offer hands the other brokers a shared grant this one exchanged, so
// their first request for its scope is a hit. A copy is not offered: the
// broker that exchanged it did.
func (b *Broker) offer(g *grant) {
	if b.fleet == nil || g.from != "" || g.exclusive || b.offersOff.Load() {
		return
	}
	b.fleet.offer(&brokerv1.OfferTokenRequest{ConnectionId: g.conn(), ScopeKey: g.key(), Token: g.response(), From: b.fleet.self})
}

// OfferToken implements the RPC: another broker's token for a scope,
// kept unless this one holds a token for it that lives as long.
func (s *PeerServer) OfferToken(_ context.Context, req *brokerv1.OfferTokenRequest) (*brokerv1.OfferTokenResponse, error) {
	b := s.b
	if b.fleet == nil {
		return nil, status.Error(codes.FailedPrecondition, "this broker is in no fleet")
	}
	c, _, err := b.peerScope(req.GetConnectionId(), req.GetScopeKey())
	if err != nil {
		return nil, err
	}
	if req.GetFrom() == b.fleet.self {
		return nil, status.Error(codes.InvalidArgument, "from: this broker's own address")
	}
	g := grantFromResponse(req.GetToken(), c.id, req.GetScopeKey(), req.GetFrom())
	if g.exclusive || g.lifeLeft(b.now()) <= 0 {
		return nil, status.Error(codes.InvalidArgument, "token: an exclusive or expired token is never offered")
	}
	displaced, kept := b.cache.putNewer(g, b.now())
	b.track(displaced...)
	if !kept {
		b.m.offersIn.WithLabelValues("older").Inc()
		return &brokerv1.OfferTokenResponse{}, nil
	}
	b.m.offersIn.WithLabelValues("kept").Inc()
	return &brokerv1.OfferTokenResponse{Kept: true}, nil
}

// RevokeHeldTokens implements the RPC.
func (s *PeerServer) RevokeHeldTokens(ctx context.Context, req *brokerv1.RevokeHeldTokensRequest) (*brokerv1.RevokeHeldTokensResponse, error) {
	revoked, failed := s.b.revokeConnection(ctx, req.GetConnectionId())
	// Counts of the cache's grants, which New bounds below MaxInt32.
	return &brokerv1.RevokeHeldTokensResponse{Revoked: int32(revoked), Failed: int32(failed)}, nil //nolint:gosec // G115: see above
}

// RevokeHeldToken implements the RPC.
func (s *PeerServer) RevokeHeldToken(ctx context.Context, req *brokerv1.RevokeHeldTokenRequest) (*brokerv1.RevokeHeldTokenResponse, error) {
	if err := s.b.revokeToken(ctx, req.GetCaller(), req.GetToken()); err != nil {
		return nil, revokeStatus(ctx, err)
	}
	return &brokerv1.RevokeHeldTokenResponse{}, nil
}

// PeerSigningStatus implements the RPC.
func (s *PeerServer) PeerSigningStatus(_ context.Context, req *brokerv1.PeerSigningStatusRequest) (*brokerv1.PeerSigningStatusResponse, error) {
	st, err := s.b.signingStatusResponse(req.GetConnectionId())
	if err != nil {
		return nil, err
	}
	return &brokerv1.PeerSigningStatusResponse{Status: st}, nil
}
