// Command tcpprobe tries a TCP connection to each address it is given, from
// inside a pod, for deploy/k8stest's NetworkPolicy check:
//
//	tcpprobe [-expect-open broker,featuregate] registry=10.244.0.9:7001 broker=10.244.0.12:7002 …
//
// prints "NAME open" or "NAME closed: REASON" per address, in order, and
// exits 0: the test reads the lines. A policy engine learns of a new pod a
// moment after it starts, so the addresses named by -expect-open are tried
// again, once a second for up to -within, until they open; then every
// address is tried once more and reported. A connection a policy drops
// times out after -timeout.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"strings"
	"time"
)

func main() {
	timeout := flag.Duration("timeout", 3*time.Second, "how long to wait for each connection")
	expectOpen := flag.String("expect-open", "", "comma-separated names to wait for until they open")
	within := flag.Duration("within", 60*time.Second, "how long to wait for -expect-open")
	flag.Parse()
	if flag.NArg() == 0 {
		log.Fatal("usage: tcpprobe [-timeout D] [-expect-open NAME,…] [-within D] NAME=HOST:PORT…")
	}
	addrs := map[string]string{}
	var names []string
	for _, arg := range flag.Args() {
		name, addr, ok := strings.Cut(arg, "=")
		if !ok {
			log.Fatalf("%q is not NAME=HOST:PORT", arg)
		}
		addrs[name] = addr
		names = append(names, name)
	}
	try := func(name string) error {
		c, err := net.DialTimeout("tcp", addrs[name], *timeout)
		if err != nil {
			return err
		}
		return c.Close()
	}
	deadline := time.Now().Add(*within)
	for _, name := range strings.Split(*expectOpen, ",") {
		if name == "" {
			continue
		}
		if _, ok := addrs[name]; !ok {
			log.Fatalf("-expect-open names %q, which is not an address given", name)
		}
		for try(name) != nil && time.Now().Before(deadline) {
			time.Sleep(time.Second)
		}
	}
	for _, name := range names {
		if err := try(name); err != nil {
			fmt.Printf("%s closed: %v\n", name, err)
		} else {
			fmt.Printf("%s open\n", name)
		}
	}
}
