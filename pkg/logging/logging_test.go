package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestRedaction(t *testing.T) {
	secrets := []string{
		"ghs_16C7e42F292c6912E7710c838347Ae178B4a",
		"github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
		"hvs.CAESIJ3abcdefghijklmnopqrstuvwxyz0123",
		"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
		"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjMifQ.c2lnbmF0dXJlc2lnbmF0dXJl",
		"Bearer c2VjcmV0LXRva2VuLXZhbHVl",
		"bearer\tc2VjcmV0LXRva2VuLXZhbHVl",
		"BEARER\r\nc2VjcmV0LXRva2VuLXZhbHVl",
		// (?i:bearer) is any mix of cases, not just two.
		"BeArEr c2VjcmV0LXRva2VuLXZhbHVl",
	}
	for _, secret := range secrets {
		var buf bytes.Buffer
		l, err := NewWithSink(Options{}, zapcore.AddSync(&buf))
		if err != nil {
			t.Fatal(err)
		}
		l.With(zap.String("with", secret)).Info("msg "+secret,
			zap.String("s", secret),
			zap.Error(errors.New("upstream said "+secret)),
			zap.ByteString("b", []byte(secret)),
			zap.Any("m", map[string]string{"k": secret}),
			zap.Strings("list", []string{secret}),
		)
		out := buf.String()
		if strings.Contains(out, secret) || strings.Contains(out, secret[:20]) {
			t.Errorf("secret %.10q… leaked: %s", secret, out)
		}
		if !strings.Contains(out, redacted) {
			t.Errorf("no redaction marker in %s", out)
		}
	}
}

// The caller's fields are not changed: redaction works on a copy, made
// only when a field needs redacting.
func TestRedactFieldsCopiesOnWrite(t *testing.T) {
	secret := "ghs_16C7e42F292c6912E7710c838347Ae178B4a"
	fields := []zapcore.Field{zap.String("a", "plain"), zap.String("b", secret), zap.Int("n", 1)}
	out := redactFields(fields)
	if fields[1].String != secret {
		t.Fatal("the caller's field was rewritten")
	}
	if out[1].String != redacted || out[0].String != "plain" || out[2].Integer != 1 {
		t.Errorf("redacted fields: %+v", out)
	}
	plain := []zapcore.Field{zap.String("a", "octo-org/alpha"), zap.String("p", "contents:read,pull_requests:write")}
	if allocs := testing.AllocsPerRun(100, func() { redactFields(plain) }); allocs != 0 {
		t.Errorf("fields without a secret cost %v allocations", allocs)
	}
}

func TestPlainTextUntouched(t *testing.T) {
	for _, s := range []string{"connection 42 connected", "server ghes.example.com version 3.14.2", "bearer"} {
		if got := Redact(s); got != s {
			t.Errorf("Redact(%q) = %q", s, got)
		}
	}
}

// A line without a secret costs the logger no allocation: the broker
// writes one per token it hands out.
func TestPlainLineAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	l, err := NewWithSink(Options{}, zapcore.AddSync(&bytes.Buffer{}))
	if err != nil {
		t.Fatal(err)
	}
	l = l.With(zap.String("request_id", "0123456789abcdef"))
	// The fields as the audit writer keeps them, in a slice of its own.
	fields := []zap.Field{zap.String("caller", "search-svc"), zap.Int64("installation_id", 42), zap.Bool("audit", true)}
	if n := testing.AllocsPerRun(200, func() { l.Info("token issued", fields...) }); n != 0 {
		t.Errorf("%v allocations a line", n)
	}
}

// A line written through a call's logger and one written to its base with
// the call's fields read the same, secrets redacted in both; a context of
// WithLogger gives its logger and no fields.
func TestCallSplitsLikeItsLogger(t *testing.T) {
	var out bytes.Buffer
	base, err := NewWithSink(Options{}, zapcore.AddSync(&out))
	if err != nil {
		t.Fatal(err)
	}
	ctx := WithCall(context.Background(), base, zap.String("request_id", "r-1"), zap.String("method", "Bearer c2VjcmV0LXRva2VuLXZhbHVl"))
	FromContext(ctx).Info("token issued", zap.Int("n", 1))
	b, fields := Call(ctx)
	b.Info("token issued", append(fields, zap.Int("n", 1))...)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), out.String())
	}
	var got [2]map[string]any
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &got[i]); err != nil {
			t.Fatal(err)
		}
		delete(got[i], "time")
	}
	if !reflect.DeepEqual(got[0], got[1]) {
		t.Errorf("through the call's logger %v, split %v", got[0], got[1])
	}
	if got[0]["request_id"] != "r-1" || got[0]["method"] != redacted {
		t.Errorf("line %v", got[0])
	}
	if l, f := Call(WithLogger(context.Background(), base)); l != base || f != nil {
		t.Errorf("Call of WithLogger: %p %v", l, f)
	}
}

// A call's logger that writes nothing costs well under half what
// Logger.With does (which copies the encoder and its buffer).
func TestCallLoggerBuiltOnUse(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation sizes differ under the race detector")
	}
	base, err := NewWithSink(Options{}, zapcore.AddSync(&bytes.Buffer{}))
	if err != nil {
		t.Fatal(err)
	}
	fields := []zap.Field{zap.String("request_id", "0123456789abcdef"), zap.String("method", "/ghconnect.broker.v1.TokenBrokerService/IssueToken")}
	bytesPer := func(f func()) uint64 {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for range 1000 {
			f()
		}
		runtime.ReadMemStats(&m1)
		return (m1.TotalAlloc - m0.TotalAlloc) / 1000
	}
	var sink any
	eager := bytesPer(func() { sink = base.With(fields...) })
	lazy := bytesPer(func() { sink = WithCall(context.Background(), base, fields...) })
	_ = sink
	if lazy*2 > eager {
		t.Errorf("WithCall allocates %d B, Logger.With %d B", lazy, eager)
	}
}

// FuzzRedactMatchesPattern: the prefilters (mayHoldSecret, hasMarker) only
// skip work; Redact gives what the pattern alone would.
func FuzzRedactMatchesPattern(f *testing.F) {
	for _, s := range []string{"token issued", "BeArEr c2VjcmV0LXRva2VuLXZhbHVl", "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
		"x hvr.abcdefghijklmnopqrstu y", "-----BEGIN EC PRIVATE KEY-----", "eyJabcdefgh.abcdefgh.x", "bEARER\t12345678"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Redact(s), secretPattern.ReplaceAllString(s, redacted); got != want {
			t.Errorf("Redact(%q) = %q; the pattern gives %q", s, got, want)
		}
	})
}
