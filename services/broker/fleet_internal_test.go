package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/ghconnect/ghconnect/pkg/dial"
	"google.golang.org/grpc"
)

// Ownership by rendezvous hashing: every broker of a fleet computes the
// same owner for a connection, the connections spread over the brokers,
// and a broker left out moves only the connections it owned, each to
// the same survivor on every broker.
func TestFleetOwnershipMovesOnlyTheLostBrokers(t *testing.T) {
	d, err := dial.New(dial.Flags{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// Three listening gRPC servers stand for the brokers: a peer that
	// cannot be connected to is left out of the hashing.
	var addrs []string
	for range 3 {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		go srv.Serve(lis) //nolint:errcheck // ends with Stop
		defer srv.Stop()
		addrs = append(addrs, lis.Addr().String())
	}
	list := strings.Join(addrs, ",")
	var fleets []*fleet
	for _, self := range addrs {
		f, err := newFleet(FleetOptions{Peers: list, Self: self}, d)
		if err != nil {
			t.Fatal(err)
		}
		defer f.close()
		fleets = append(fleets, f)
	}
	ownerOf := func(f *fleet, conn string) string {
		if p := f.owner(conn); p != nil {
			return p.addr
		}
		return f.self
	}
	const conns = 3000
	before := map[string]string{}
	count := map[string]int{}
	for i := range conns {
		conn := fmt.Sprintf("conn-%d", i)
		o := ownerOf(fleets[0], conn)
		for _, f := range fleets[1:] {
			if got := ownerOf(f, conn); got != o {
				t.Fatalf("%s: %s says %s owns it, %s says %s", conn, fleets[0].self, o, f.self, got)
			}
		}
		before[conn] = o
		count[o]++
	}
	for _, a := range addrs {
		if count[a] < conns/3*8/10 || count[a] > conns/3*12/10 {
			t.Errorf("%s owns %d of %d connections, want about a third", a, count[a], conns)
		}
	}
	// The survivors leave out broker 3 (it failed a call to each).
	lost := addrs[2]
	for _, f := range fleets[:2] {
		f.markDown(context.Background(), f.peers[lost], errors.New("gone"))
	}
	moved := 0
	for conn, o := range before {
		now := ownerOf(fleets[0], conn)
		if got := ownerOf(fleets[1], conn); got != now {
			t.Fatalf("%s: the survivors disagree: %s and %s", conn, now, got)
		}
		switch {
		case o != lost && now != o:
			t.Errorf("%s moved from %s to %s, which is alive", conn, o, now)
		case o == lost:
			if now == lost {
				t.Errorf("%s still owned by the lost broker", conn)
			}
			moved++
		}
	}
	if moved != count[lost] {
		t.Errorf("%d connections moved, want the %d the lost broker owned", moved, count[lost])
	}
	if fleets[0].alive(lost) || !fleets[0].alive(fleets[0].self) || !fleets[0].alive(addrs[1]) {
		t.Errorf("alive: the lost broker %v, self %v, the other %v", fleets[0].alive(lost), fleets[0].alive(fleets[0].self), fleets[0].alive(addrs[1]))
	}
}

// A fleet's list must name this broker, and its entries be addresses.
func TestFleetRefusesBadLists(t *testing.T) {
	d, err := dial.New(dial.Flags{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, tc := range []FleetOptions{
		{Peers: "127.0.0.1:1,127.0.0.1:2", Self: "127.0.0.1:3"},
		{Peers: "127.0.0.1:1,nonsense", Self: "127.0.0.1:1"},
		{Peers: "127.0.0.1:1", Self: "no-port"},
		{Peers: "dns:///no-port", Self: "127.0.0.1:1"},
	} {
		if _, err := newFleet(tc, d); err == nil {
			t.Errorf("%+v: accepted", tc)
		} else {
			t.Logf("%+v: %v", tc, err)
		}
	}
}
