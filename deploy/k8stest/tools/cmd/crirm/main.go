// Command crirm stops and removes every pod sandbox (and so every
// container, its network and its network namespace) of a CRI runtime, for
// deploy/k8stest's teardown: run after the kubelet has stopped, before
// containerd stops, so nothing the cluster started outlives it.
//
//	crirm -endpoint /path/to/containerd.sock
package main

import (
	"context"
	"flag"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	endpoint := flag.String("endpoint", "", "the runtime's unix socket (required)")
	timeout := flag.Duration("timeout", 60*time.Second, "give up after this long")
	flag.Parse()
	if *endpoint == "" {
		log.Fatal("crirm: -endpoint is required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+*endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatalf("crirm: %v", err)
	}
	defer func() { _ = conn.Close() }()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	pods, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		log.Fatalf("crirm: list pod sandboxes: %v", err)
	}
	failed := 0
	for _, p := range pods.Items {
		name := p.GetMetadata().GetNamespace() + "/" + p.GetMetadata().GetName()
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			log.Printf("crirm: stop %s: %v", name, err)
			failed++
			continue
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			log.Printf("crirm: remove %s: %v", name, err)
			failed++
		}
	}
	log.Printf("crirm: %d pod sandboxes removed, %d failed", len(pods.Items)-failed, failed)
	if failed > 0 {
		log.Fatal("crirm: some pod sandboxes are left")
	}
}
