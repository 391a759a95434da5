package broker

import (
	"time"

	"github.com/ghconnect/ghconnect/pkg/testenv"
)

// Test hooks into the broker's state, for the external tests.

// ForgetJWT makes the next exchange sign a new App JWT.
func (b *Broker) ForgetJWT(conn string) { b.up.forgetJWT(conn) }

// DropCached empties the cache of a connection's grants.
func (b *Broker) DropCached(conn string) { b.track(b.cache.dropConnection(conn)...) }

// ShortenCached makes every cached grant expire after d.
func (b *Broker) ShortenCached(d time.Duration) {
	b.cache.mu.Lock()
	defer b.cache.mu.Unlock()
	for _, g := range b.cache.slots {
		if g != nil {
			g.expires = time.Now().Add(d).UnixNano()
		}
	}
}

// SetUserClock makes the broker's user authorization read the time from
// now (to see an access token expire without waiting hours).
func (b *Broker) SetUserClock(now func() time.Time) { b.users.now = now }

// Schema is the users' store's migrations, for tests that want a database
// migrated already (testenv clones a template of it).
var Schema = testenv.Schema{Service: "broker", Files: migrationFiles, Dir: "migrations"}

// StopOffers stops this broker offering the tokens it exchanges to the
// others of its fleet, which then fetch them on their first miss.
func (b *Broker) StopOffers() { b.offersOff.Store(true) }

// Holds reports whether the cache holds token.
func (b *Broker) Holds(token string) bool { return b.cache.findToken(fingerprintOf(token)) != nil }
