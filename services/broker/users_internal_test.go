package broker

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// A user token's audit line, rendered by the writer, has the fields the
// handler used to give it, in the same order; a refreshed token (a new
// userToken) is rendered anew.
func TestAuditUserTokenLine(t *testing.T) {
	l, sink := newGatedLogger(t, true)
	w := newAuditWriter(newMetrics(nil))
	exp := time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)
	for _, tok := range []*userToken{{token: "ghu_one", expires: exp, login: "mona-cloud", id: 7}, {token: "ghu_two", expires: exp.Add(time.Hour), login: "mona-cloud", id: 7}} {
		call := []zap.Field{zap.String("request_id", "r1")}
		w.emit(auditEvent{log: l, call: call, level: zapcore.InfoLevel, msg: "user token issued", userToken: tok, user: "mona", caller: "search-svc", conn: "c1"})
		w.flush()
		want := `"msg":"user token issued","request_id":"r1","audit":true,"caller":"search-svc","connection_id":"c1","user":"mona","github_login":"mona-cloud",` +
			`"token_sha256":"` + fingerprintOf(tok.token).String() + `","expires":"` + tok.expires.UTC().Format(time.RFC3339) + `"}`
		sink.mu.Lock()
		out := sink.buf.String()
		sink.buf.Reset()
		sink.mu.Unlock()
		if !strings.Contains(out, want) {
			t.Errorf("audit line\n%s\nwant it to end\n%s", out, want)
		}
	}
}
