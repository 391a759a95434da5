package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A huge path is logged cut, with how long it was: a request cannot fill
// the log.
func TestAccessLogCapsThePath(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	h := accessLog(zap.New(core), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }))
	long := "/v1/" + strings.Repeat("a", 1<<20)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", long, nil))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/connections", nil))
	entries := logs.All()
	if len(entries) != 2 {
		t.Fatalf("%d lines", len(entries))
	}
	got := entries[0].ContextMap()["path"].(string)
	if len(got) > maxLoggedPath+64 || !strings.HasPrefix(got, "/v1/aaaa") || !strings.Contains(got, "1048580 bytes") {
		t.Errorf("logged path of %d bytes: %.80q…", len(got), got)
	}
	if p := entries[1].ContextMap()["path"]; p != "/v1/connections" {
		t.Errorf("a short path logged as %q", p)
	}
}
