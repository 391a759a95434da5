package gateway

import (
	"io"
	"net"
	"testing"
	"time"
)

// One client holds at most max connections; a closed one frees its place.
func TestConnectionsPerClientAreCapped(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := limitPerClient(inner, 3)
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var served []net.Conn
	for range 3 {
		dial()
		served = append(served, <-accepted)
	}
	// The fourth is closed by the server at once, and never served.
	extra := dial()
	if err := extra.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := extra.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("a fourth connection was kept open: %v", err)
	}
	select {
	case <-accepted:
		t.Fatalf("a fourth connection was served")
	case <-time.After(100 * time.Millisecond):
	}
	// The server closing one of the three frees a place.
	served[0].Close()
	served[0].Close() // twice frees it once
	dial()
	select {
	case c := <-accepted:
		t.Cleanup(func() { c.Close() })
	case <-time.After(2 * time.Second):
		t.Fatalf("no place after a connection closed")
	}
	dial()
	select {
	case <-accepted:
		t.Errorf("closing one connection twice freed two places")
	case <-time.After(100 * time.Millisecond):
	}
}
