// Command oidcdev runs the development identity provider on a loopback
// address and prints OIDC_ISSUER=<url> on its first line of output.
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

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	clientID := flag.String("client-id", "ghconnect-gateway", "the one OAuth client")
	secretFile := flag.String("client-secret-file", "", "file holding the client's secret")
	user := flag.String("user", "admin@example.com", "who the sign-in page suggests")
	groups := flag.String("groups", "ghconnect-admins", "the groups it suggests (comma-separated)")
	flag.Parse()
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		log.Fatalf("oidcdev: -addr must be a loopback address, got %q", *addr)
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
	p, err := oidcdev.Start(ln, oidcdev.Options{ClientID: *clientID, ClientSecret: secret, User: *user, Groups: strings.Split(*groups, ",")})
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
