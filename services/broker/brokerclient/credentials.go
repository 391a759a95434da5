package brokerclient

import (
	"context"

	"google.golang.org/grpc/credentials"
)

// Bearer returns per-call credentials that present a bearer token to the
// broker: grpc.WithPerRPCCredentials(brokerclient.Bearer(token)). In
// production, callers authenticate with mutual TLS instead.
func Bearer(token string) credentials.PerRPCCredentials { return bearer(token) }

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false so development setups on loopback work
// without TLS.
func (bearer) RequireTransportSecurity() bool { return false }
