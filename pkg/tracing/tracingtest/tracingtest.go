// Package tracingtest is an OTLP/gRPC trace receiver for tests: a real
// collector endpoint on a loopback port that keeps every span it is sent,
// so a test can point services at it and look at their traces.
package tracingtest

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	collectorv1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Span is one received span with the service that sent it.
type Span struct {
	Service string
	*tracev1.Span
}

// TraceID is the span's trace id in hex.
func (s Span) TraceID() string { return hex.EncodeToString(s.GetTraceId()) }

// ID is the span's id in hex.
func (s Span) ID() string { return hex.EncodeToString(s.GetSpanId()) }

// ParentID is the parent span's id in hex, empty for a root.
func (s Span) ParentID() string { return hex.EncodeToString(s.GetParentSpanId()) }

// Attr is the string form of the span's attribute key, "" if it has none.
func (s Span) Attr(key string) string {
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() == key {
			return anyString(kv.GetValue())
		}
	}
	return ""
}

func anyString(v *commonv1.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonv1.AnyValue_StringValue:
		return x.StringValue
	case *commonv1.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonv1.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	default:
		return protojson.Format(v)
	}
}

// Text is everything the span says, as text: its name, status,
// attributes, events and links, for scanning. Ids are left out: in
// base64, random bytes may spell anything.
func (s Span) Text() string {
	c := proto.Clone(s.Span).(*tracev1.Span)
	c.TraceId, c.SpanId, c.ParentSpanId = nil, nil, nil
	for _, l := range c.GetLinks() {
		l.TraceId, l.SpanId = nil, nil
	}
	return protojson.Format(c)
}

func (s Span) String() string {
	return fmt.Sprintf("%s %q (%s) span %s parent %s", s.Service, s.GetName(), s.GetKind(), s.ID(), s.ParentID())
}

// Receiver is the OTLP endpoint.
type Receiver struct {
	collectorv1.UnimplementedTraceServiceServer
	addr     string
	mu       sync.Mutex
	spans    []Span
	requests int
}

// Start serves a receiver on 127.0.0.1 until the test ends.
func Start(t testing.TB) *Receiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Receiver{addr: lis.Addr().String()}
	srv := grpc.NewServer()
	collectorv1.RegisterTraceServiceServer(srv, r)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return r
}

// Endpoint is the receiver's address as OTEL_EXPORTER_OTLP_ENDPOINT
// takes it (plaintext).
func (r *Receiver) Endpoint() string { return "http://" + r.addr }

// Export implements the OTLP trace service.
func (r *Receiver) Export(_ context.Context, req *collectorv1.ExportTraceServiceRequest) (*collectorv1.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				r.spans = append(r.spans, Span{Service: service, Span: sp})
			}
		}
	}
	return &collectorv1.ExportTraceServiceResponse{}, nil
}

// Spans are the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// Requests counts the export calls received.
func (r *Receiver) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// Trace is the spans of one trace.
type Trace []Span

// Traces groups spans by trace id.
func Traces(spans []Span) map[string]Trace {
	out := map[string]Trace{}
	for _, s := range spans {
		out[s.TraceID()] = append(out[s.TraceID()], s)
	}
	return out
}

// Roots are the trace's spans with no parent.
func (tr Trace) Roots() []Span {
	var out []Span
	for _, s := range tr {
		if s.ParentID() == "" {
			out = append(out, s)
		}
	}
	return out
}

// Orphans are the trace's spans whose parent is not in it: a hop that
// did not pass the trace on, or a parent never exported.
func (tr Trace) Orphans() []Span {
	ids := map[string]bool{}
	for _, s := range tr {
		ids[s.ID()] = true
	}
	var out []Span
	for _, s := range tr {
		if p := s.ParentID(); p != "" && !ids[p] {
			out = append(out, s)
		}
	}
	return out
}

// Under is whether span lies below ancestor (or is it).
func (tr Trace) Under(span, ancestor Span) bool {
	byID := map[string]Span{}
	for _, s := range tr {
		byID[s.ID()] = s
	}
	for cur, ok := span, true; ok; cur, ok = byID[cur.ParentID()] {
		if cur.ID() == ancestor.ID() {
			return true
		}
	}
	return false
}

// Find is the trace's spans that match.
func (tr Trace) Find(match func(Span) bool) []Span {
	var out []Span
	for _, s := range tr {
		if match(s) {
			out = append(out, s)
		}
	}
	return out
}

// Tree renders the trace as an indented tree, for failure messages.
func (tr Trace) Tree() string {
	children := map[string][]Span{}
	for _, s := range tr {
		children[s.ParentID()] = append(children[s.ParentID()], s)
	}
	var b strings.Builder
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		kids := children[parent]
		slices.SortFunc(kids, func(a, b Span) int { return cmp.Compare(a.GetStartTimeUnixNano(), b.GetStartTimeUnixNano()) })
		for _, s := range kids {
			fmt.Fprintf(&b, "%s%s: %s (%s)\n", strings.Repeat("  ", depth), s.Service, s.GetName(), strings.TrimPrefix(s.GetKind().String(), "SPAN_KIND_"))
			walk(s.ID(), depth+1)
		}
	}
	walk("", 0)
	for _, o := range tr.Orphans() {
		fmt.Fprintf(&b, "orphan: %s\n", o)
	}
	return b.String()
}
