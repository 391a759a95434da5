package gateway

import (
	"net"
	"sync"
)

// perClientListener caps how many connections one client address holds
// open at once: one client cannot take every connection the gateway can
// serve. A connection past the cap is closed at once.
type perClientListener struct {
	net.Listener
	max int

	mu   sync.Mutex
	open map[string]int
}

func limitPerClient(l net.Listener, perClient int) net.Listener {
	return &perClientListener{Listener: l, max: perClient, open: map[string]int{}}
}

func clientOf(a net.Addr) string {
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

func (l *perClientListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		who := clientOf(c.RemoteAddr())
		l.mu.Lock()
		full := l.open[who] >= l.max
		if !full {
			l.open[who]++
		}
		l.mu.Unlock()
		if full {
			// Refused: whatever closing says, the connection is gone.
			_ = c.Close()
			continue
		}
		return &countedConn{Conn: c, release: func() { l.release(who) }}, nil
	}
}

func (l *perClientListener) release(who string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[who]--; l.open[who] <= 0 {
		delete(l.open, who)
	}
}

// countedConn gives its place back once, when closed.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
