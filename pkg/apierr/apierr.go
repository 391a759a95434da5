// Package apierr turns failures into the gRPC statuses callers see: constant,
// secret-free messages for clients, the wrapped cause in the log, and field
// violations as errdetails.BadRequest (HTTP 400 through the gateway).
package apierr

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ghconnect/ghconnect/pkg/logging"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// MaxViolations is how many field violations an answer lists; the rest
// are counted in one more ("and N more"), so a huge bad request gets a
// small answer.
const MaxViolations = 100

// Violations collects field violations of one request.
type Violations struct {
	list []*errdetails.BadRequest_FieldViolation
	// more counts the violations past MaxViolations.
	more int
}

// Add records that field is wrong, and why.
func (v *Violations) Add(field, description string) {
	if len(v.list) >= MaxViolations {
		v.more++
		return
	}
	v.list = append(v.list, &errdetails.BadRequest_FieldViolation{Field: field, Description: description})
}

// Addf is Add with formatting.
func (v *Violations) Addf(field, format string, args ...any) {
	v.Add(field, fmt.Sprintf(format, args...))
}

// Check records field's error, if any.
func (v *Violations) Check(field string, err error) {
	if err != nil {
		v.Add(field, err.Error())
	}
}

// Err returns nil when nothing was recorded, else InvalidArgument carrying
// every violation.
func (v *Violations) Err() error {
	if len(v.list) == 0 {
		return nil
	}
	msg := "invalid request: " + v.list[0].Field + ": " + v.list[0].Description
	if n := len(v.list) + v.more; n > 1 {
		msg += fmt.Sprintf(" (and %d more)", n-1)
	}
	list := v.list
	if v.more > 0 {
		list = append(list[:len(list):len(list)], &errdetails.BadRequest_FieldViolation{Field: "", Description: fmt.Sprintf("and %d more", v.more)})
	}
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(&errdetails.BadRequest{FieldViolations: list})
	if err != nil {
		return status.Error(codes.InvalidArgument, msg)
	}
	return st.Err()
}

// Internal logs cause at Error and returns an Internal status with msg, a
// constant text that cannot carry a secret from cause.
func Internal(ctx context.Context, cause error, msg string) error {
	logging.FromContext(ctx).Error(msg, zap.Error(cause))
	return status.Error(codes.Internal, msg)
}

// Unavailable logs cause at Warn and returns Unavailable with msg.
func Unavailable(ctx context.Context, cause error, msg string) error {
	logging.FromContext(ctx).Warn(msg, zap.Error(cause))
	return status.Error(codes.Unavailable, msg)
}

// Retry returns code with msg and a RetryInfo saying how long to wait
// before trying again (GitHub.com's Retry-After, a pause after a failure).
func Retry(code codes.Code, msg string, wait time.Duration) error {
	st := status.New(code, msg)
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); err == nil {
		st = d
	}
	return st.Err()
}

// Precondition returns FailedPrecondition with msg, and one
// PreconditionFailure violation of type typ on subject, saying msg, for
// callers that act on the kind of refusal.
func Precondition(typ, subject, msg string) error {
	st := status.New(codes.FailedPrecondition, msg)
	if d, err := st.WithDetails(&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{Type: typ, Subject: subject, Description: msg}}}); err == nil {
		st = d
	}
	return st.Err()
}

// StreamEnd maps how a server stream ended: the server stopping (err is
// stopping) is Unavailable, so the subscriber resumes elsewhere; the caller
// leaving is its context's status; a status error passes as is; anything
// else goes through other.
func StreamEnd(err, stopping error, other func(error) error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, stopping):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case status.Code(err) != codes.Unknown:
		return err
	}
	return other(err)
}
