package tracing

import (
	"context"
	"regexp"
	"strings"

	"github.com/ghconnect/ghconnect/pkg/logging"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// What the instrumentation records is reviewed (otelgrpc: method, peer
// address, status; otelhttp: method, route or path, host, a client's full
// URL, status, sizes; no headers, no bodies), but a URL's query carries
// secrets here (OAuth code and state on the gateway's callbacks, the
// Vault and GitHub calls' parameters), and an error's text may quote a
// URL. So every span leaves the process through redactingExporter, which
// removes each query string and every secret-shaped value from names,
// attributes, events and statuses, whatever recorded them.

// droppedKeys are attributes whose whole value is a query.
var droppedKeys = map[attribute.Key]bool{"url.query": true}

// queryInURL is a URL's query and fragment, wherever a URL appears in a
// string: an attribute holding one, an error quoting one.
var queryInURL = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#"']*|^/[^\s?#"']*)[?#][^\s"']*`)

// secretSegment is a path segment that is itself a secret: the one-time
// code of GitHub's App-manifest conversion (POST /app-manifests/{code}/conversions).
var secretSegment = regexp.MustCompile(`(/app-manifests/)[^/\s?#"']+`)

const redactedQuery = "?REDACTED"

// scrub is s without any URL's query or secret path segment and with
// every secret-shaped part (GitHub and Vault tokens, JWTs, private keys,
// bearer credentials) replaced.
func scrub(s string) string {
	if strings.ContainsAny(s, "?#") {
		s = queryInURL.ReplaceAllString(s, "${1}"+redactedQuery)
	}
	if strings.Contains(s, "/app-manifests/") {
		s = secretSegment.ReplaceAllString(s, "${1}REDACTED")
	}
	return logging.Redact(s)
}

// scrubAttrs copies attrs only when one changes.
func scrubAttrs(attrs []attribute.KeyValue) []attribute.KeyValue {
	var out []attribute.KeyValue
	for i, kv := range attrs {
		keep, changed := scrubAttr(kv)
		if out == nil && (changed || droppedKeys[kv.Key]) {
			out = append(make([]attribute.KeyValue, 0, len(attrs)), attrs[:i]...)
		}
		if out != nil && !droppedKeys[kv.Key] {
			out = append(out, keep)
		}
	}
	if out == nil {
		return attrs
	}
	return out
}

func scrubAttr(kv attribute.KeyValue) (attribute.KeyValue, bool) {
	switch kv.Value.Type() {
	case attribute.STRING:
		s := kv.Value.AsString()
		if r := scrub(s); r != s {
			return kv.Key.String(r), true
		}
	case attribute.STRINGSLICE:
		ss := kv.Value.AsStringSlice()
		changed := false
		for i, s := range ss {
			if r := scrub(s); r != s {
				ss[i], changed = r, true
			}
		}
		if changed {
			return kv.Key.StringSlice(ss), true
		}
	}
	return kv, false
}

// redactingExporter scrubs each span on its way to next.
type redactingExporter struct {
	next sdktrace.SpanExporter
}

func (e redactingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, s := range spans {
		out[i] = scrubbedSpan{s}
	}
	return e.next.ExportSpans(ctx, out)
}

func (e redactingExporter) Shutdown(ctx context.Context) error { return e.next.Shutdown(ctx) }

// scrubbedSpan is a span as it may leave the process.
type scrubbedSpan struct {
	sdktrace.ReadOnlySpan
}

func (s scrubbedSpan) Name() string { return scrub(s.ReadOnlySpan.Name()) }

func (s scrubbedSpan) Attributes() []attribute.KeyValue {
	return scrubAttrs(s.ReadOnlySpan.Attributes())
}

func (s scrubbedSpan) Events() []sdktrace.Event {
	events := s.ReadOnlySpan.Events()
	out := make([]sdktrace.Event, len(events))
	for i, ev := range events {
		ev.Name = scrub(ev.Name)
		ev.Attributes = scrubAttrs(ev.Attributes)
		out[i] = ev
	}
	return out
}

func (s scrubbedSpan) Status() sdktrace.Status {
	st := s.ReadOnlySpan.Status()
	st.Description = scrub(st.Description)
	return st
}

func (s scrubbedSpan) Links() []sdktrace.Link {
	links := s.ReadOnlySpan.Links()
	out := make([]sdktrace.Link, len(links))
	for i, l := range links {
		l.Attributes = scrubAttrs(l.Attributes)
		out[i] = l
	}
	return out
}
