package logging

import (
	"regexp"
	"slices"
	"strings"

	"go.uber.org/zap/zapcore"
)

// secretPattern matches the shapes of every secret ghconnect handles:
// GitHub tokens (classic prefixes and fine-grained PATs), Vault tokens, PEM
// private keys, bearer credentials and JWTs. Redaction is the last line of
// defence; code should never pass secrets to a logger in the first place.
var secretPattern = regexp.MustCompile(
	`gh[pousr]_[A-Za-z0-9_]{20,}` +
		`|github_pat_[A-Za-z0-9_]{20,}` +
		`|hv[sbr]\.[A-Za-z0-9_-]{20,}` +
		`|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)` +
		`|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}` +
		`|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*`)

const redacted = "[REDACTED]"

// markers are substrings every secretPattern match contains, but for
// bearer credentials, whose word is in any mix of cases (hasMarker);
// checking for them first keeps the regular expression off the common
// path, where log fields hold no secret.
var markers = []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "hvs.", "hvb.", "hvr.", "PRIVATE KEY", "eyJ"}

// hasMarker reports whether s holds a marker or "bearer" in any case.
func hasMarker(s string) bool {
	for _, m := range markers {
		if strings.Contains(s, m) {
			return true
		}
	}
	const word = "bearer"
	for i := 0; i+len(word) <= len(s); i++ {
		// |0x20 lower-cases an ASCII letter; only 'b' and 'B' give 'b'.
		if s[i]|0x20 == word[0] && strings.EqualFold(s[i:i+len(word)], word) {
			return true
		}
	}
	return false
}

// every is a byte each secretPattern match contains: '_' (GitHub
// tokens), '.' (Vault tokens, JWTs) or white space as \s means it (after
// "bearer", inside "BEGIN … PRIVATE KEY"). A string without any is passed
// in one scan.
const every = "_. \t\n\f\r"

// inEvery is every as a table: one lookup a byte.
var inEvery = func() (t [256]bool) {
	for i := range len(every) {
		t[every[i]] = true
	}
	return t
}()

// mayHoldSecret reports whether s has a byte of every.
func mayHoldSecret(s string) bool {
	for i := range len(s) {
		if inEvery[s[i]] {
			return true
		}
	}
	return false
}

// Redact replaces every secret-shaped part of s.
func Redact(s string) string {
	if !mayHoldSecret(s) {
		return s
	}
	if !hasMarker(s) || !secretPattern.MatchString(s) {
		return s
	}
	return secretPattern.ReplaceAllString(s, redacted)
}

// redactingCore rewrites messages and string-like fields before they reach
// the encoder, so no caller can log a secret by accident, including through
// an error's text. It is used by pointer: Check hands it to every entry,
// and a pointer goes into an interface without an allocation.
type redactingCore struct {
	zapcore.Core
}

func (c *redactingCore) With(fields []zapcore.Field) zapcore.Core {
	return &redactingCore{c.Core.With(redactFields(fields))}
}

func (c *redactingCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *redactingCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	e.Message = Redact(e.Message)
	return c.Core.Write(e, redactFields(fields))
}

// redactFields copies fields only when one changes: a line without a
// secret costs no allocation here.
func redactFields(fields []zapcore.Field) []zapcore.Field {
	out := fields
	for i, f := range fields {
		switch f.Type {
		case zapcore.StringType:
			r := Redact(f.String)
			if r == f.String {
				continue
			}
			f.String = r
		case zapcore.ErrorType:
			if err, ok := f.Interface.(error); ok && err != nil {
				f = zapcore.Field{Key: f.Key, Type: zapcore.StringType, String: Redact(err.Error())}
			}
		case zapcore.StringerType:
			if s, ok := f.Interface.(interface{ String() string }); ok {
				f = zapcore.Field{Key: f.Key, Type: zapcore.StringType, String: Redact(s.String())}
			}
		case zapcore.ByteStringType, zapcore.BinaryType:
			if b, ok := f.Interface.([]byte); ok {
				f = zapcore.Field{Key: f.Key, Type: zapcore.StringType, String: Redact(string(b))}
			}
		case zapcore.ReflectType, zapcore.ObjectMarshalerType, zapcore.ArrayMarshalerType:
			// Structured values could hide a secret in any field; they are
			// rendered and redacted as text.
			f = zapcore.Field{Key: f.Key, Type: zapcore.StringType, String: Redact(renderValue(f.Interface))}
		default:
			continue
		}
		if &out[0] == &fields[0] {
			out = slices.Clone(fields)
		}
		out[i] = f
	}
	return out
}
