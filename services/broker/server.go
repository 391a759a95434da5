// Package broker is the token-broker service: short-lived GitHub.com
// installation tokens for internal services, the App JWT signed through
// Vault transit.
//
// Not built yet: every RPC answers UNIMPLEMENTED until the broker's issue
// lands. The type exists so the gateway and clients compile against the
// final API.
package broker

import brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"

var _ brokerv1.TokenBrokerServiceServer = (*Server)(nil)

// Server implements the TokenBrokerService.
type Server struct {
	brokerv1.UnimplementedTokenBrokerServiceServer
}
