package broker

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/ghconnect/ghconnect/pkg/permissions"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// tokenRequest is an IssueToken request as the handler decoded it.
type tokenRequest struct {
	connection  string
	repos       []string
	repoIDs     []int64
	permissions map[string]string
	exclusive   bool
	minLifetime time.Duration
}

// issueToken decides caller's token request: the connection must be
// CONNECTED and the caller's policy must allow the scope; the grant comes
// from the cache or GitHub.com. Every issuance and refusal is audited; a
// refusal is a gRPC status, in the audit's words.
func (b *Broker) issueToken(ctx context.Context, caller string, r tokenRequest) (*grant, error) {
	start := time.Now()
	// Audit fields are plain strings, cheap to encode on the cache-hit
	// path. An issuance names what the token grants; a refusal, what was
	// asked.
	var installation *int64
	refuse := func(err error, reason string) error {
		fields := []zap.Field{auditField, zap.String("caller", caller), zap.String("connection_id", r.connection)}
		if installation != nil {
			fields = append(fields, zap.Int64("installation_id", *installation))
		}
		log, call := b.auditTo(ctx)
		b.audits.emit(auditEvent{log: log, call: call, level: zapcore.WarnLevel, msg: "token refused", fields: append(fields,
			zap.String("outcome", "refused"), zap.String("reason", reason),
			zap.String("repositories", strings.Join(r.repos, ",")), zap.String("repository_ids", joinIDs(r.repoIDs)),
			zap.String("permissions", permissions.String(r.permissions)), zap.Bool("exclusive", r.exclusive))})
		return err
	}

	c := b.conns.get(r.connection)
	if c == nil || !c.connected {
		return nil, refuse(status.Error(codes.FailedPrecondition, "the connection is not CONNECTED"), "not connected")
	}
	installation = &c.installationID
	var repos [4]string
	sc, err := b.opts.Policy.Callers[caller].authorize(caller, c.id, r.repos, r.repoIDs, r.permissions, r.exclusive, repos[:0])
	if err != nil {
		return nil, refuse(status.Error(codes.PermissionDenied, err.Error()), err.Error())
	}
	g, result, err := b.issue(ctx, c, sc, r.minLifetime, r.exclusive, caller)
	if err != nil {
		st := upstreamStatus(ctx, err)
		return nil, refuse(st, status.Convert(st).Message())
	}
	log, call := b.auditTo(ctx)
	b.audits.emit(auditEvent{log: log, call: call, level: zapcore.InfoLevel, msg: "token issued",
		g: g, expires: g.expires, caller: caller, conn: r.connection, installation: c.installationID, cache: result})
	if result == "hit" {
		b.m.hitSeconds.Observe(time.Since(start).Seconds())
	}
	return g, nil
}

// errUnknownConnection: the registry never told the broker of the
// connection.
var errUnknownConnection = errors.New("unknown connection")

// signingStatus is how a connection's App JWTs are signed.
type signingStatus struct {
	mount, key string
	// versions of the transit key in use, oldest first; current signed
	// the JWT GitHub.com accepted last (0: none yet); pending and notice
	// as connInfo's.
	versions         []int
	current, pending int
	notice           string
	lastError        string
	lastSign         time.Time
}

// signingStatus reports how conn's App JWTs are signed.
func (b *Broker) signingStatus(conn string) (signingStatus, error) {
	c := b.conns.get(conn)
	if c == nil {
		return signingStatus{}, errUnknownConnection
	}
	st := b.up.signing(c.id)
	return signingStatus{mount: c.mount, key: c.key, versions: c.versions, current: st.version, pending: c.pending,
		notice: c.notice, lastError: st.lastError, lastSign: st.lastSign}, nil
}
