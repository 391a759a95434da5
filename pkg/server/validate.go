package server

import (
	"context"
	"errors"
	"strings"

	"buf.build/go/protovalidate"
	"github.com/ghconnect/ghconnect/pkg/apierr"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// requestRules checks every request message against the rules its .proto
// declares (buf/validate options, ghconnect/rules/v1's shared ones): a
// handler sees only requests that keep them, and a caller that breaks one
// gets INVALID_ARGUMENT with a BadRequest field violation per broken rule,
// in pkg/apierr's shape ("counts[3].user": "must be a server login ...").
// The rules are all on fields: a rule on a whole message would answer
// with no field, so checks across fields stay in the handlers.
//
// A request type with a RequestCheck (Options.RequestChecks) is checked by
// it instead: the same rules, compiled by hand into Go for a hot path.
type requestRules struct {
	v protovalidate.Validator
	// hot are the RequestChecks by message name; nil when there are none.
	hot map[protoreflect.FullName]func(proto.Message, *apierr.Violations)
}

func newRequestRules(checks ...RequestCheck) requestRules {
	v, err := protovalidate.New()
	if err != nil {
		// New fails only on bad options; it is given none.
		panic(err)
	}
	r := requestRules{v: v}
	for _, c := range checks {
		if r.hot == nil {
			r.hot = map[protoreflect.FullName]func(proto.Message, *apierr.Violations){}
		}
		r.hot[c.name] = c.check
	}
	return r
}

// A RequestCheck is one request type's .proto rules written as a Go
// function, for a call so frequent and cheap (the broker's cache hits)
// that protovalidate's general evaluation would be a noticeable share of
// it. The .proto stays where the rules are declared (and documented); the
// function must answer exactly as protovalidate does, field paths and
// texts alike, which a test holds it to with DeclaredRules (see
// services/broker's TestHotChecksAgree).
type RequestCheck struct {
	name  protoreflect.FullName
	check func(proto.Message, *apierr.Violations)
}

// Check makes a RequestCheck of f for requests of type T; f adds a
// violation per broken rule, in the order protovalidate reports them.
func Check[T proto.Message](f func(T, *apierr.Violations)) RequestCheck {
	var zero T
	return RequestCheck{
		name:  zero.ProtoReflect().Descriptor().FullName(),
		check: func(m proto.Message, v *apierr.Violations) { f(m.(T), v) },
	}
}

// Name is the full name of the message type c checks.
func (c RequestCheck) Name() protoreflect.FullName { return c.name }

// Err runs c on m: nil, or INVALID_ARGUMENT with its field violations.
func (c RequestCheck) Err(m proto.Message) error {
	var v apierr.Violations
	c.check(m, &v)
	return v.Err()
}

// DeclaredRules checks m against its .proto rules with protovalidate, as
// the server does for every request without a RequestCheck.
func DeclaredRules(ctx context.Context, m proto.Message) error {
	return declared.check(ctx, m)
}

var declared = newRequestRules()

func (r requestRules) check(ctx context.Context, m any) error {
	msg, ok := m.(proto.Message)
	if !ok {
		return nil
	}
	if r.hot != nil {
		if f := r.hot[msg.ProtoReflect().Descriptor().FullName()]; f != nil {
			var v apierr.Violations
			f(msg, &v)
			return v.Err()
		}
	}
	err := r.v.Validate(msg)
	if err == nil {
		return nil
	}
	var invalid *protovalidate.ValidationError
	if !errors.As(err, &invalid) {
		// A rule that does not compile or cannot be evaluated: ours to fix.
		return apierr.Internal(ctx, err, "the request's validation rules failed")
	}
	var v apierr.Violations
	for _, x := range invalid.Violations {
		v.Add(protovalidate.FieldPathString(x.Proto.GetField()), violationText(x))
	}
	return v.Err()
}

// violationText is what the caller reads after the field's name: the
// rule's message, without protovalidate's "value " in front of a few of
// its own ("value is required").
func violationText(x *protovalidate.Violation) string {
	if m := x.Proto.GetMessage(); m != "" {
		return strings.TrimPrefix(m, "value ")
	}
	return "breaks rule " + x.Proto.GetRuleId()
}

func (r requestRules) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := r.check(ctx, req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (r requestRules) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &checkedStream{ServerStream: ss, rules: r})
}

// checkedStream checks each message the client sends.
type checkedStream struct {
	grpc.ServerStream
	rules requestRules
}

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.rules.check(s.Context(), m)
}
