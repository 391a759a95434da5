// Command broker runs the token-broker service.
package main

import (
	"context"

	"github.com/ghconnect/ghconnect/pkg/config"
	"github.com/ghconnect/ghconnect/services/broker"
)

func main() {
	var cfg broker.Config
	config.Main("broker", broker.EnvPrefix, &cfg, func(ctx context.Context) error { return broker.Run(ctx, cfg) })
}
