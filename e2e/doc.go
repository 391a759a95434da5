// Package e2e tests ghconnect as users run it: every service, vaultdev and
// the GitHub emulator as separate processes on loopback ports, driven
// through the REST gateway, the broker's gRPC API and the operator CLI.
// The registry is built with -tags crashpoints, so that the crash tests
// can end it right after a step (-crash-after, -crash-mode); make build,
// make run and the images build it without.
package e2e
