// Package featuregate is the feature-gate service: the settings of the
// GitHub Connect features, per-user consent and account links, and whether
// a feature is effective for a user.
//
// Not built yet: every RPC answers UNIMPLEMENTED until the feature gate's
// issue lands. The type exists so the gateway and clients compile against
// the final API.
package featuregate

import featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"

var _ featuregatev1.FeatureGateServiceServer = (*Server)(nil)

// Server implements the FeatureGateService.
type Server struct {
	featuregatev1.UnimplementedFeatureGateServiceServer
}
