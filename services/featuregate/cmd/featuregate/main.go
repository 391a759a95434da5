// Command featuregate runs the feature-gate service.
package main

import (
	"context"

	"github.com/ghconnect/ghconnect/pkg/config"
	"github.com/ghconnect/ghconnect/services/featuregate"
)

func main() {
	var cfg featuregate.Config
	config.Main("featuregate", featuregate.EnvPrefix, &cfg, func(ctx context.Context) error { return featuregate.Run(ctx, cfg) })
}
