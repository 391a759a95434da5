// Package loadecho serves ghconnect.loadtest.v1.EchoService, the baseline
// load tests compare a service's methods with (see the proto): registered
// on the service's own server, a call to it passes every interceptor the
// service's other methods do, and its reply is as large as asked.
package loadecho

import (
	"context"

	loadtestv1 "github.com/ghconnect/ghconnect/gen/ghconnect/loadtest/v1"
	"github.com/ghconnect/ghconnect/pkg/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Method is the echo's full method name.
const Method = loadtestv1.EchoService_Echo_FullMethodName

// zeros backs every reply: replies share it, read only.
var zeros = make([]byte, 1<<20)

type server struct {
	loadtestv1.UnimplementedEchoServiceServer
}

// Echo implements the RPC.
func (server) Echo(_ context.Context, req *loadtestv1.EchoRequest) (*loadtestv1.EchoResponse, error) {
	n := req.GetReplyBytes()
	if n < 0 || int(n) > len(zeros) {
		return nil, status.Error(codes.InvalidArgument, "reply_bytes: must be between 0 and 1048576")
	}
	return &loadtestv1.EchoResponse{Payload: zeros[:n]}, nil
}

// Register adds the echo to s and lets roles call it.
func Register(s *grpc.Server, r *auth.Rules, roles ...string) error {
	if err := r.Permit(Method, roles...); err != nil {
		return err
	}
	loadtestv1.RegisterEchoServiceServer(s, server{})
	return nil
}

// Call sends a request of request bytes encoded (see Request) asking for
// a reply of reply bytes: a baseline as large as the method it stands
// for, both ways.
func Call(ctx context.Context, cc grpc.ClientConnInterface, request, reply int32) error {
	req, err := Request(request, reply)
	if err != nil {
		return err
	}
	_, err = loadtestv1.NewEchoServiceClient(cc).Echo(ctx, req)
	return err
}

// Request is the echo's request asking for reply bytes, size bytes
// encoded: its payload fills it up to size, as near as the encoding
// allows from below; with no room for a payload it has none.
func Request(size, reply int32) (*loadtestv1.EchoRequest, error) {
	if int(size) > len(zeros) {
		return nil, status.Error(codes.InvalidArgument, "payload: at most 1048576 bytes")
	}
	req := &loadtestv1.EchoRequest{ReplyBytes: reply}
	// The payload's tag and length take 2 to 4 bytes of its room.
	for n := int(size) - req.SizeVT(); n > 0; n-- {
		req.Payload = zeros[:n]
		if req.SizeVT() <= int(size) {
			break
		}
		req.Payload = nil
	}
	return req, nil
}
