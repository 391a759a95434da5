package broker

import (
	"context"
	"sync"

	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
)

// connInfo is what the broker needs of a registry connection.
type connInfo struct {
	id             string
	connected      bool
	appID          int64
	installationID int64
	mount, key     string
	// clientID and clientSecret (Vault transit ciphertext of the secrets
	// key) authenticate the App's user authorization.
	clientID, clientSecret string
	// account is the connected GitHub.com account's login.
	account string
	// versions of the transit key in use, oldest first; the newest signs.
	versions []int
	// pending and notice: a newer version in Vault GitHub.com does not
	// accept yet, as the registry found.
	pending int
	notice  string
}

// connections mirrors the registry in memory, fed by its Watch stream.
type connections struct {
	mu  sync.RWMutex
	rev int64
	m   map[string]*connInfo
}

func newConnections() *connections { return &connections{m: map[string]*connInfo{}} }

func (c *connections) get(id string) *connInfo {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[id]
}

func (c *connections) after(context.Context) (int64, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev, nil
}

// newest is the key version that signs.
func (i *connInfo) newest() int {
	if len(i.versions) == 0 {
		return 0
	}
	return i.versions[len(i.versions)-1]
}

// apply records an event and reports whether the connection just stopped
// being CONNECTED, and whether its newest key version went up.
func (c *connections) apply(ev *registryv1.ConnectionEvent) (disconnected, newKey bool) {
	rc := ev.GetConnection()
	info := &connInfo{
		id:             rc.GetId(),
		connected:      rc.GetState() == registryv1.ConnectionState_CONNECTION_STATE_CONNECTED,
		appID:          rc.GetApp().GetAppId(),
		installationID: rc.GetInstallationId(),
		clientID:       rc.GetApp().GetClientId(),
		account:        rc.GetAccount().GetLogin(),
		clientSecret:   rc.GetApp().GetClientSecretCiphertext(),
		mount:          rc.GetTransitKey().GetMount(),
		pending:        int(rc.GetTransitKey().GetPendingVersion()),
		notice:         rc.GetTransitKey().GetNotice(),
	}
	if rc.GetTransitKey() != nil {
		// The App key is named by the connection's id, as the registry
		// names it, never by what a record says.
		info.key = vaulttransit.AppKeyName(rc.GetId())
	}
	for _, v := range rc.GetTransitKey().GetVersions() {
		info.versions = append(info.versions, int(v))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	prev := c.m[info.id]
	c.m[info.id] = info
	if ev.GetRevision() > c.rev {
		c.rev = ev.GetRevision()
	}
	return prev != nil && prev.connected && !info.connected, prev != nil && info.newest() > prev.newest()
}
