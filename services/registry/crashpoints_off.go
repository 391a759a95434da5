//go:build !crashpoints

package registry

import "flag"

// crashConfig is empty in an ordinary build: no crash flags and no crash
// points (crashpoints.go has them, for the crash tests' build).
type crashConfig struct{}

func (*crashConfig) registerFlags(*flag.FlagSet) {}

func (*crashConfig) validate() error { return nil }

func (crashConfig) at(string) {}
