package server

import (
	"context"
	"errors"
	"strings"

	"buf.build/go/protovalidate"
	"github.com/ghconnect/ghconnect/pkg/apierr"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// requestRules checks every request message against the rules its .proto
// declares (buf/validate options, ghconnect/rules/v1's shared ones): a
// handler sees only requests that keep them, and a caller that breaks one
// gets INVALID_ARGUMENT with a BadRequest field violation per broken rule,
// in pkg/apierr's shape ("counts[3].user": "must be a server login ...").
// The rules are all on fields: a rule on a whole message would answer
// with no field, so checks across fields stay in the handlers.
type requestRules struct{ v protovalidate.Validator }

func newRequestRules() requestRules {
	v, err := protovalidate.New()
	if err != nil {
		// New fails only on bad options; it is given none.
		panic(err)
	}
	return requestRules{v: v}
}

func (r requestRules) check(ctx context.Context, m any) error {
	msg, ok := m.(proto.Message)
	if !ok {
		return nil
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
