// Command oidcdev runs the development identity provider (dev/oidcdev) in
// deploy/k8stest's cluster. dev/oidcdev/cmd/oidcdev listens on loopback
// only and names its issuer after that address; in a pod the provider must
// listen on the pod's address and name itself after its Service, so this
// listens on -addr and reports -issuer-host as its address (the issuer is
// http://<issuer-host>/oidc). Never for production.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ghconnect/ghconnect/dev/oidcdev"
)

// named is a listener that gives another address as its own.
type named struct {
	net.Listener
	addr hostAddr
}

func (n named) Addr() net.Addr { return n.addr }

type hostAddr string

func (hostAddr) Network() string  { return "tcp" }
func (a hostAddr) String() string { return string(a) }

func main() {
	addr := flag.String("addr", ":8400", "listen address")
	host := flag.String("issuer-host", "", "host:port the issuer URL names (required), e.g. oidc.ghconnect-deps.svc.cluster.local:8400")
	clientID := flag.String("client-id", "ghconnect-gateway", "the one OAuth client")
	secretFile := flag.String("client-secret-file", "", "file holding the client's secret")
	flag.Parse()
	if *host == "" {
		log.Fatal("oidcdev: -issuer-host is required")
	}
	secret := ""
	if *secretFile != "" {
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			log.Fatal(err)
		}
		secret = strings.TrimSpace(string(b))
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	p, err := oidcdev.Start(named{ln, hostAddr(*host)}, oidcdev.Options{ClientID: *clientID, ClientSecret: secret,
		User: "admin@example.com", Groups: []string{"ghconnect-admins"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("OIDC_ISSUER=%s\n", p.Issuer())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}
}
