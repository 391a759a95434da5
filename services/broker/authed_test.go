package broker_test

import (
	"context"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// authed is the broker client with a caller's bearer token on each call.
type authed struct {
	brokerv1.TokenBrokerServiceClient
	token string
}

func (a authed) IssueToken(ctx context.Context, in *brokerv1.IssueTokenRequest, opts ...grpc.CallOption) (*brokerv1.IssueTokenResponse, error) {
	return a.TokenBrokerServiceClient.IssueToken(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+a.token), in, opts...)
}
