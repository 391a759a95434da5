// Command dnsq looks names up at one DNS server, for deploy/k8stest's
// checks of cluster DNS from the host:
//
//	dnsq -server 10.96.0.10:53 registry.ghconnect.svc.cluster.local …
//
// prints "NAME ADDR,ADDR…" per name (sorted) and fails if a name has no
// address.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"sort"
	"strings"
	"time"
)

func main() {
	server := flag.String("server", "", "DNS server host:port (required)")
	flag.Parse()
	if *server == "" || flag.NArg() == 0 {
		log.Fatal("usage: dnsq -server HOST:PORT NAME…")
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, *server)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	failed := false
	for _, name := range flag.Args() {
		addrs, err := r.LookupHost(ctx, name)
		if err != nil || len(addrs) == 0 {
			log.Printf("dnsq: %s: %v", name, err)
			failed = true
			continue
		}
		sort.Strings(addrs)
		fmt.Printf("%s %s\n", name, strings.Join(addrs, ","))
	}
	if failed {
		log.Fatal("dnsq: some names did not resolve")
	}
}
