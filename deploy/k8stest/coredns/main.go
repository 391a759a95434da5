// Command coredns is CoreDNS (github.com/coredns/coredns) with only the
// plugins the test cluster of deploy/k8stest needs for cluster DNS: the
// kubernetes plugin (Services and Pods under cluster.local), plus errors,
// log, health, ready, cache, loadbalance and reload. It runs in the
// cluster as the kube-dns Deployment in kube-system.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func main() { coremain.Run() }
