package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
)

// The connector's work is in three files: enable.go (the App manifest,
// the installation, an existing App, key rotation), disconnect.go (the
// recorded steps of a disconnect and the reconciler that finishes them)
// and github.go (its calls to GitHub.com). Every change it makes to a
// connection is a move of lifecycle.go.

// Connector carries out enabling and disconnecting GitHub Connect: it talks
// to GitHub.com, to Vault transit, and (when configured) to the feature gate
// and the broker.
type Connector struct {
	Store   *Store
	Transit *vaulttransit.Client
	// GitHubAPI is the API base URL; GitHubWeb the site browsers go to
	// (https://github.com, or the emulator).
	GitHubAPI *url.URL
	GitHubWeb string
	HTTP      *http.Client
	// Broker and Gate are optional: without them their disconnect steps
	// are recorded as nothing to do.
	Broker brokerv1.TokenBrokerServiceClient
	Gate   featuregatev1.FeatureGateServiceClient
	Now    func() time.Time
	// OrphanGrace is how old a key of a PENDING connection without an App
	// must be before the reconciler deletes it (an enable may be under
	// way); 0 means 10 minutes.
	OrphanGrace time.Duration
	// running serialises disconnects of one connection in this process
	// (the RPC and the reconciler); across replicas the steps are
	// idempotent and the state checks decide.
	running sync.Map
	// crash is where a crash test ends the process (crashpoints.go); it
	// exists only in a test build.
	crash crashConfig
	// metrics: nil records nothing (tests that build a Connector alone).
	metrics *connectorMetrics
}

// take makes move m on connection id (see Store.Update); a crash test may
// end the process right after it.
func (c *Connector) take(ctx context.Context, id, etag string, m Move, ch Change) (*registryv1.Connection, error) {
	out, err := c.Store.Update(ctx, id, etag, m, ch)
	if err != nil {
		return nil, err
	}
	c.crash.at(m.Action())
	return out, nil
}

// connectError is a refusal whose text is safe for the caller.
type connectError struct{ msg string }

func (e *connectError) Error() string { return e.msg }

func refusef(format string, args ...any) error { return &connectError{fmt.Sprintf(format, args...)} }

func (c *Connector) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// keyName is the transit key of connection id's App. Every use of an App
// key (import, signing, rotation, deletion) names it by this, never by
// what a record says: a record cannot point the registry at another key.
func keyName(id string) string { return vaulttransit.AppKeyName(id) }

// newTransitKey is the record of connection id's transit key, just
// imported.
func (c *Connector) newTransitKey(id string) *registryv1.TransitKey {
	return &registryv1.TransitKey{Mount: c.Transit.Mount(), Name: keyName(id), Versions: []int32{1}}
}
