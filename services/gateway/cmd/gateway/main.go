// Command gateway runs the REST gateway.
package main

import (
	"context"

	"github.com/ghconnect/ghconnect/pkg/config"
	"github.com/ghconnect/ghconnect/services/gateway"
)

func main() {
	var cfg gateway.Config
	config.Main("gateway", gateway.EnvPrefix, &cfg, func(ctx context.Context) error { return gateway.Run(ctx, cfg) })
}
