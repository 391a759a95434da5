package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/pkg/vaulttransit"
)

func (s *system) vaultKeys() []string {
	req, _ := http.NewRequest("LIST", s.vault+"/v1/transit/keys", nil)
	req.Header.Set("X-Vault-Token", s.tokens["vault"])
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Keys []string `json:"keys"`
		} `json:"data"`
	}
	// Anything but a list of keys (an error) is no keys.
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return out.Data.Keys
}

func (s *system) eventually(what string, cond func() bool) {
	s.t.Helper()
	testenv.Eventually(s.t, 20*time.Second, what, cond)
}

// crash restarts the registry so it exits after step, runs op (which the
// crash interrupts), and brings the registry back normally. The request
// the registry dies answering is cut off as soon as it has exited: the
// gateway would otherwise keep retrying it for its whole deadline
// (10 s) against no registry at all. Cutting it ends the gateway's call
// as a browser that gives up would, so the restarted registry never
// finishes it either.
func (s *system) crash(step string, op func()) {
	s.t.Helper()
	s.stop("registry")
	s.startRegistry(step)
	cmd := s.procs["registry"]
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // a crash is an exit status; ProcessState says it ended
		close(exited)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	s.cutOff.Store(&ctx)
	op()
	s.cutOff.Store(nil)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		s.t.Fatalf("the registry did not exit after %s", step)
	}
	s.startRegistry("")
}

// TestCrashRecovery kills the registry right after each step of enabling
// and of disconnecting, restarts it, and checks the end state: what was
// committed stays, an interrupted disconnect is finished by the
// reconciler, and no key is left in Vault for a connection that cannot use
// it.
func TestCrashRecovery(t *testing.T) {
	s := startSystem(t)
	prev := ""
	// newConn connects the server anew: the previous step's connection,
	// when still live, is disabled first (one connection at a time).
	newConn := func() string {
		if prev != "" && s.connection(prev)["state"] != "CONNECTION_STATE_DISCONNECTED" {
			s.mustREST("POST", "/v1/connections/"+prev+":disconnect", map[string]any{"reason": "the next crash test"})
		}
		prev = s.create()
		return prev
	}
	noOrphan := func(id string) {
		t.Helper()
		for _, k := range s.vaultKeys() {
			if k == vaulttransit.AppKeyName(id) {
				t.Errorf("key %s left in Vault", k)
			}
		}
	}

	t.Run("after key_imported", func(t *testing.T) {
		id := newConn()
		s.crash("key_imported", func() {
			start := s.mustREST("POST", "/v1/connections/"+id+":startAppManifest", map[string]any{"callbackUrl": s.gw + "/connect/callback"})
			s.signIn()
			loc := next(t)(s.browser.PostForm(start["postUrl"].(string), url.Values{"manifest": {start["manifest"].(string)}}))
			resp, err := s.browser.Get(loc) // the registry dies answering this
			if err == nil {
				resp.Body.Close()
			}
		})
		s.eventually("the orphan key is deleted", func() bool {
			for _, k := range s.vaultKeys() {
				if k == vaulttransit.AppKeyName(id) {
					return false
				}
			}
			return true
		})
		if c := s.connection(id); c["state"] != "CONNECTION_STATE_PENDING" || c["app"] != nil {
			t.Fatalf("after the crash: %v", c)
		}
		s.enable(id) // the administrator starts again
		if c := s.connection(id); c["state"] != "CONNECTION_STATE_CONNECTED" {
			t.Errorf("enable after the crash: %v", c["state"])
		}
	})

	t.Run("after app_created", func(t *testing.T) {
		id := newConn()
		s.crash("app_created", func() {
			start := s.mustREST("POST", "/v1/connections/"+id+":startAppManifest", map[string]any{"callbackUrl": s.gw + "/connect/callback"})
			s.signIn()
			loc := next(t)(s.browser.PostForm(start["postUrl"].(string), url.Values{"manifest": {start["manifest"].(string)}}))
			if resp, err := s.browser.Get(loc); err == nil {
				resp.Body.Close()
			}
		})
		c := s.connection(id)
		if c["state"] != "CONNECTION_STATE_PENDING" || c["app"] == nil {
			t.Fatalf("after the crash: %v", c)
		}
		// Starting again resumes at the installation.
		again := s.mustREST("POST", "/v1/connections/"+id+":startAppManifest", map[string]any{"callbackUrl": s.gw + "/connect/callback"})
		s.install(again["installUrl"].(string))
		if c := s.connection(id); c["state"] != "CONNECTION_STATE_CONNECTED" {
			t.Errorf("resumed enable: %v", c["state"])
		}
	})

	t.Run("after mark_connected", func(t *testing.T) {
		id := newConn()
		start := s.mustREST("POST", "/v1/connections/"+id+":startAppManifest", map[string]any{"callbackUrl": s.gw + "/connect/callback"})
		s.signIn()
		loc := next(t)(s.browser.PostForm(start["postUrl"].(string), url.Values{"manifest": {start["manifest"].(string)}}))
		install := next(t)(s.browser.Get(loc))
		setup := next(t)(s.browser.Get(install))
		s.crash("mark_connected", func() {
			if resp, err := s.browser.Get(setup); err == nil {
				resp.Body.Close()
			}
		})
		if c := s.connection(id); c["state"] != "CONNECTION_STATE_CONNECTED" {
			t.Errorf("after the crash: %v", c["state"])
		}
	})

	for _, step := range []string{"begin_disconnect", "disconnect_step:features_off", "disconnect_step:tokens_revoked", "disconnect_step:installation_removed", "disconnect_step:key_deleted"} {
		t.Run("disconnect after "+step, func(t *testing.T) {
			id := newConn()
			s.enable(id)
			c := s.connection(id)
			inst := c["installationId"].(string)
			var tok map[string]any
			s.eventually("the broker sees the connection", func() bool {
				code, out := s.restAs("search-svc", "POST", "/v1/connections/"+id+"/tokens", map[string]any{"permissions": map[string]string{"metadata": "read"}})
				tok = out
				return code == 200
			})
			s.crash(step, func() {
				// The registry dies answering: the call fails.
				s.restAs("admin", "POST", "/v1/connections/"+id+":disconnect", map[string]any{"reason": "crash test"})
			})
			s.eventually("the reconciler finishes the disconnect", func() bool {
				return s.connection(id)["state"] == "CONNECTION_STATE_DISCONNECTED"
			})
			c = s.connection(id)
			steps, _ := json.Marshal(c["disconnectSteps"])
			if !strings.Contains(string(steps), "key_deleted") || strings.Count(string(steps), "features_off") != 1 {
				t.Errorf("steps: %s", steps)
			}
			noOrphan(id)
			if s.githubStatus(tok["token"].(string)) != http.StatusUnauthorized {
				t.Errorf("token still valid after the disconnect")
			}
			var live map[string]int
			s.emuJSON("/_emu/tokens/"+inst, &live)
			if live["live"] != 0 {
				t.Errorf("%d live tokens", live["live"])
			}
		})
	}
}
