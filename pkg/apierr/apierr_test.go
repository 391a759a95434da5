package apierr_test

import (
	"strings"
	"testing"

	"github.com/ghconnect/ghconnect/pkg/apierr"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// A request with a huge number of bad fields gets a bounded answer: the
// first violations, then one saying how many more there were.
func TestViolationsAreCapped(t *testing.T) {
	var v apierr.Violations
	for range 400000 {
		v.Add("users", "must be a server login")
	}
	st := status.Convert(v.Err())
	var br *errdetails.BadRequest
	for _, d := range st.Details() {
		if b, ok := d.(*errdetails.BadRequest); ok {
			br = b
		}
	}
	if br == nil {
		t.Fatalf("no BadRequest in %v", st)
	}
	n := len(br.FieldViolations)
	if n > apierr.MaxViolations+1 {
		t.Errorf("%d violations answered", n)
	}
	last := br.FieldViolations[n-1]
	if want := "and 399900 more"; last.Description != want {
		t.Errorf("last violation %q, want %q", last.Description, want)
	}
	if size := proto.Size(st.Proto()); size > 16<<10 {
		t.Errorf("the answer is %d bytes", size)
	}
	if !strings.Contains(st.Message(), "(and 399999 more)") {
		t.Errorf("message %q", st.Message())
	}
}

// A refused precondition says why in the message and, for a program, in
// one violation naming its type and subject.
func TestPrecondition(t *testing.T) {
	st := status.Convert(apierr.Precondition("STATE", "connection", "the connection is not CONNECTED"))
	if st.Code() != codes.FailedPrecondition || st.Message() != "the connection is not CONNECTED" {
		t.Errorf("got %v %q", st.Code(), st.Message())
	}
	want := &errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{Type: "STATE", Subject: "connection", Description: "the connection is not CONNECTED"}}}
	if d := st.Details(); len(d) != 1 || !proto.Equal(d[0].(proto.Message), want) {
		t.Errorf("details %v, want %v", d, want)
	}
}
