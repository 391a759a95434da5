//go:build k8stools

// Package tools pins the Kubernetes commands that deploy/k8stest/run.sh
// builds (go build k8s.io/kubernetes/cmd/…); the build tag keeps it out of
// every build, it only holds the requirements in go.mod.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
