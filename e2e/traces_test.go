package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ghconnect/ghconnect/pkg/tracing"
	"github.com/ghconnect/ghconnect/pkg/tracing/tracingtest"
)

// TestTracesAcrossEveryHop runs the system with OTLP export on, pointed
// at a receiver of the test's own, and drives an enabling, a broker token,
// a unified search and a disconnect through the gateway. The disconnect is
// one trace from the gateway's REST span through the registry to the
// feature gate, the broker and the registry's own Vault and GitHub.com
// calls; the token is one trace
// from the gateway through the broker to Vault's signature and GitHub.com's
// exchange. No span, event or status holds a secret the run used.
func TestTracesAcrossEveryHop(t *testing.T) {
	rec := tracingtest.Start(t)
	// Every process the system starts inherits it.
	t.Setenv(tracing.EnvEndpoint, rec.Endpoint())
	s := startSystem(t)
	services := []string{"gateway", "registry", "broker", "featuregate"}

	// Enabling, keeping what GitHub.com's redirects carry: the manifest's
	// code and the states.
	id := s.create()
	s.signIn()
	start := s.mustREST("POST", "/v1/connections/"+id+":startAppManifest", map[string]any{"callbackUrl": s.gw + "/connect/callback"})
	callback := next(t)(s.browser.PostForm(start["postUrl"].(string), url.Values{"manifest": {start["manifest"].(string)}}))
	install := next(t)(s.browser.Get(callback))
	setup := next(t)(s.browser.Get(install))
	if loc := next(t)(s.browser.Get(setup)); !strings.Contains(loc, "connected=") {
		t.Fatalf("setup ended at %s", loc)
	}
	secrets := map[string]string{}
	for what, u := range map[string]string{"callback": callback, "setup": setup} {
		q := mustURL(t, u).Query()
		for _, k := range []string{"code", "state"} {
			if v := q.Get(k); v != "" {
				secrets[what+" "+k] = v
			}
		}
	}
	if secrets["callback code"] == "" || secrets["callback state"] == "" {
		t.Fatalf("the manifest callback carries no code and state: %s", callback)
	}

	// A token: the broker signs the App's JWT with Vault and exchanges it
	// at GitHub.com. It learns of the connection through the registry's
	// Watch; until then it answers otherwise.
	var token string
	s.eventually("the broker issues a token", func() bool {
		code, out := s.restAs("search-svc", "POST", "/v1/connections/"+id+"/tokens", map[string]any{"repositories": []string{"hello-world"}, "permissions": map[string]string{"contents": "read"}})
		token, _ = out["token"].(string)
		return code == 200
	})
	secrets["the issued token"] = token
	// Unified search: the feature gate asks the broker, then GitHub.com.
	s.mustREST("PATCH", "/v1/connections/"+id+"/features", map[string]any{"features": []any{map[string]any{"feature": "FEATURE_UNIFIED_SEARCH", "enabled": true}}})
	if code, res := s.restAs("search-svc", "POST", "/v1/connections/"+id+"/search", map[string]any{"user": "mona", "query": "unified", "kind": "SEARCH_KIND_CODE"}); code != 200 {
		t.Fatalf("search: %d %v", code, res)
	}
	s.mustREST("POST", "/v1/connections/"+id+":disconnect", map[string]any{"reason": "traces"})

	// A service flushes its spans as it stops.
	for _, n := range services {
		s.stop(n)
	}
	s.stop("ghemu") // it writes its state: the Apps' client secrets
	spans := rec.Spans()
	traces := tracingtest.Traces(spans)
	t.Logf("%d spans in %d traces", len(spans), len(traces))

	vaultHost, emuHost := mustURL(t, s.vault).Host, mustURL(t, s.emu).Host
	calls := func(host string) func(tracingtest.Span) bool {
		return func(sp tracingtest.Span) bool {
			return sp.GetKind().String() == "SPAN_KIND_CLIENT" && strings.HasPrefix(sp.Attr("url.full"), "http://"+host+"/")
		}
	}
	serverOf := func(service string) func(tracingtest.Span) bool {
		return func(sp tracingtest.Span) bool {
			return sp.Service == service && sp.GetKind().String() == "SPAN_KIND_SERVER"
		}
	}
	named := func(name string) func(tracingtest.Span) bool {
		return func(sp tracingtest.Span) bool { return serverOf("gateway")(sp) && sp.GetName() == name }
	}

	// Every trace is one tree: each span's parent was exported too.
	for _, tr := range traces {
		if len(tr.Orphans()) > 0 {
			t.Errorf("a trace with spans whose parent is missing:\n%s", tr.Tree())
		}
	}

	// The disconnect.
	disconnects := find(traces, named("POST /v1/connections/{id}:disconnect"))
	if len(disconnects) != 1 {
		t.Fatalf("want one trace rooted at the gateway's disconnect span, got %d; gateway spans: %v", len(disconnects), names(spans, "gateway"))
	}
	tr := disconnects[0]
	root := tr.Roots()
	if len(root) != 1 || !named("POST /v1/connections/{id}:disconnect")(root[0]) {
		t.Errorf("the disconnect's trace has roots %v:\n%s", root, tr.Tree())
	}
	for _, svc := range services {
		if len(tr.Find(serverOf(svc))) == 0 {
			t.Errorf("the disconnect's trace has no server span of the %s:\n%s", svc, tr.Tree())
		}
	}
	reg := tr.Find(serverOf("registry"))
	for what, match := range map[string]func(tracingtest.Span) bool{
		"the registry's Vault call":         func(sp tracingtest.Span) bool { return calls(vaultHost)(sp) && sp.Service == "registry" },
		"the registry's GitHub.com call":    func(sp tracingtest.Span) bool { return calls(emuHost)(sp) && sp.Service == "registry" },
		"the feature gate's server span":    serverOf("featuregate"),
		"the broker's server span (revoke)": serverOf("broker"),
	} {
		found := tr.Find(match)
		if len(found) == 0 || len(reg) == 0 || !tr.Under(found[0], reg[0]) {
			t.Errorf("the disconnect's trace: %s is missing or not under the registry's span:\n%s", what, tr.Tree())
		}
	}

	// The token: the gateway, the broker, Vault's signature and GitHub.com's
	// exchange, one tree.
	var signed bool
	for _, tr := range find(traces, named("POST /v1/connections/{connection_id}/tokens")) {
		b := tr.Find(serverOf("broker"))
		v, g := tr.Find(calls(vaultHost)), tr.Find(calls(emuHost))
		if len(tr.Roots()) == 1 && len(b) == 1 && len(v) > 0 && len(g) > 0 && tr.Under(v[0], b[0]) && tr.Under(g[0], b[0]) && v[0].Service == "broker" && g[0].Service == "broker" {
			signed = true
			t.Logf("the token's trace:\n%s", tr.Tree())
		}
	}
	if !signed {
		t.Errorf("no trace from the gateway through the broker to Vault and GitHub.com; gateway spans: %v", names(spans, "gateway"))
	}
	t.Logf("the disconnect's trace:\n%s", tr.Tree())

	// No secret anywhere: the run's own values, and any value of a secret's
	// shape.
	for _, p := range services {
		secrets[p+"'s bearer token"] = s.tokens[p]
	}
	secrets["the admin's token"], secrets["search-svc's token"], secrets["Vault's root token"] = s.tokens["admin"], s.tokens["search-svc"], s.tokens["vault"]
	secrets["the identity provider's client secret"] = strings.TrimSpace(readFile(t, filepath.Join(s.dir, "oidc-client-secret")))
	creds, _ := filepath.Glob(filepath.Join(s.dir, "vault-creds", "*"))
	for _, f := range creds {
		secrets["Vault credential "+filepath.Base(f)] = strings.TrimSpace(readFile(t, f))
	}
	var emu struct {
		Apps []struct{ ClientSecret, WebhookSecret string }
	}
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(s.dir, "ghemu-state.json"))), &emu); err != nil || len(emu.Apps) == 0 {
		t.Fatalf("the emulator's state: %v (%d Apps)", err, len(emu.Apps))
	}
	for i, a := range emu.Apps {
		secrets[fmt.Sprintf("App %d's client secret", i)] = a.ClientSecret
		if a.WebhookSecret != "" {
			secrets[fmt.Sprintf("App %d's webhook secret", i)] = a.WebhookSecret
		}
	}
	for what, v := range secrets {
		if len(v) < 8 {
			t.Fatalf("%s is %q: too short to look for", what, v)
		}
	}
	for what, shape := range map[string]string{"an installation token": "ghs_", "a user token": "ghu_", "a refresh token": "ghr_",
		"a PEM block": "-----BEGIN", "a Vault token": "hvs.", "a JWT": "eyJ", "a bearer credential": "Bearer ", "a wrapped key": "vault:v"} {
		secrets[what+" ("+shape+")"] = shape
	}
	found := map[string]int{}
	for _, sp := range spans {
		for _, what := range findSecrets(secrets, sp.Text()) {
			if found[what]++; found[what] == 1 {
				t.Errorf("span %v holds %s:\n%s", sp, what, sp.Text())
			}
		}
	}
	t.Logf("secret scan: %d spans, %d needles, %d found", len(spans), len(secrets), len(found))
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// find is the traces holding a span that matches.
func find(traces map[string]tracingtest.Trace, match func(tracingtest.Span) bool) []tracingtest.Trace {
	var out []tracingtest.Trace
	for _, tr := range traces {
		if len(tr.Find(match)) > 0 {
			out = append(out, tr)
		}
	}
	return out
}

// names are the distinct span names of a service, for failure messages.
func names(spans []tracingtest.Span, service string) []string {
	var out []string
	for _, sp := range spans {
		if sp.Service == service && !slices.Contains(out, sp.GetName()) {
			out = append(out, sp.GetName())
		}
	}
	slices.Sort(out)
	return out
}
