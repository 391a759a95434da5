package logging

import (
	"bytes"
	"errors"
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

func TestPlainTextUntouched(t *testing.T) {
	for _, s := range []string{"connection 42 connected", "server ghes.example.com version 3.14.2", "bearer"} {
		if got := Redact(s); got != s {
			t.Errorf("Redact(%q) = %q", s, got)
		}
	}
}
