// Package e2e tests ghconnect as users run it: every service, vaultdev and
// the GitHub emulator as separate processes on loopback ports, driven
// through the REST gateway, the broker's gRPC API and the operator CLI.
package e2e
