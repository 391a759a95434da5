// Command registry runs the connection-registry service.
package main

import (
	"context"

	"github.com/ghconnect/ghconnect/pkg/config"
	"github.com/ghconnect/ghconnect/services/registry"
)

func main() {
	var cfg registry.Config
	config.Main("registry", registry.EnvPrefix, &cfg, func(ctx context.Context) error { return registry.Run(ctx, cfg) })
}
