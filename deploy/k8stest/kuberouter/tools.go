//go:build tools

// Package tools pins kube-router (github.com/cloudnativelabs/kube-router/v2),
// whose network policy controller enforces NetworkPolicies on
// deploy/k8stest's node (run.sh starts it with only the firewall on). Its
// own module, outside go.work: run.sh builds it with GOWORK=off.
package tools

import _ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
