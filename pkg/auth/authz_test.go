package auth

import (
	"context"
	"reflect"
	"strings"
	"testing"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	registryv1 "github.com/ghconnect/ghconnect/gen/ghconnect/registry/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// whoMayCall is the system's authorization, written out: for every method
// of every service, the roles that may call it. A method added to a proto
// fails this test until someone decides who may call it, and a role that
// gains or loses a method fails it too.
var whoMayCall = map[string]string{
	"/ghconnect.registry.v1.ConnectionRegistryService/CreateConnection":             "admin",
	"/ghconnect.registry.v1.ConnectionRegistryService/GetConnection":                "admin auditor",
	"/ghconnect.registry.v1.ConnectionRegistryService/GetServerDefaults":            "admin auditor",
	"/ghconnect.registry.v1.ConnectionRegistryService/ListConnections":              "admin auditor gateway",
	"/ghconnect.registry.v1.ConnectionRegistryService/ListConnectionHistory":        "admin auditor",
	"/ghconnect.registry.v1.ConnectionRegistryService/ListLeftoverApps":             "admin auditor",
	"/ghconnect.registry.v1.ConnectionRegistryService/WatchConnections":             "admin auditor broker featuregate",
	"/ghconnect.registry.v1.ConnectionRegistryService/StartAppManifest":             "admin",
	"/ghconnect.registry.v1.ConnectionRegistryService/CompleteAppManifest":          "admin gateway",
	"/ghconnect.registry.v1.ConnectionRegistryService/CompleteInstallation":         "admin gateway",
	"/ghconnect.registry.v1.ConnectionRegistryService/ConnectExistingApp":           "admin",
	"/ghconnect.registry.v1.ConnectionRegistryService/RotateAppKey":                 "admin",
	"/ghconnect.registry.v1.ConnectionRegistryService/RefreshAppPermissions":        "admin",
	"/ghconnect.registry.v1.ConnectionRegistryService/ListInstallationRepositories": "admin auditor",
	"/ghconnect.registry.v1.ConnectionRegistryService/Disconnect":                   "admin",

	"/ghconnect.broker.v1.TokenBrokerService/IssueToken":                "token-client",
	"/ghconnect.broker.v1.TokenBrokerService/RevokeToken":               "token-client",
	"/ghconnect.broker.v1.TokenBrokerService/RevokeConnectionTokens":    "token-admin",
	"/ghconnect.broker.v1.TokenBrokerService/GetSigningStatus":          "admin auditor token-admin",
	"/ghconnect.broker.v1.TokenBrokerService/GetHealth":                 "admin auditor token-admin",
	"/ghconnect.broker.v1.TokenBrokerService/StartUserAuthorization":    "token-client",
	"/ghconnect.broker.v1.TokenBrokerService/CompleteUserAuthorization": "token-client",
	"/ghconnect.broker.v1.TokenBrokerService/IssueUserToken":            "token-client",
	"/ghconnect.broker.v1.TokenBrokerService/GetUserGrant":              "token-client",
	"/ghconnect.broker.v1.TokenBrokerService/RevokeUserGrant":           "token-client",

	"/ghconnect.featuregate.v1.FeatureGateService/ListFeatures":        "admin auditor feature-client",
	"/ghconnect.featuregate.v1.FeatureGateService/GetSettings":         "admin auditor registry",
	"/ghconnect.featuregate.v1.FeatureGateService/UpdateSettings":      "admin",
	"/ghconnect.featuregate.v1.FeatureGateService/SetUserConsent":      "account-holder feature-client",
	"/ghconnect.featuregate.v1.FeatureGateService/StartAccountLink":    "account-holder feature-client",
	"/ghconnect.featuregate.v1.FeatureGateService/CompleteAccountLink": "account-holder feature-client",
	"/ghconnect.featuregate.v1.FeatureGateService/GetAccountLink":      "account-holder admin feature-client",
	"/ghconnect.featuregate.v1.FeatureGateService/UnlinkAccount":       "account-holder admin feature-client",
	"/ghconnect.featuregate.v1.FeatureGateService/Check":               "account-holder admin auditor feature-client",
	"/ghconnect.featuregate.v1.FeatureGateService/Watch":               "feature-client",
	"/ghconnect.featuregate.v1.FeatureGateService/Search":              "account-holder feature-client",

	"/ghconnect.featuregate.v1.FeatureGateService/ListSettingsHistory": "admin auditor",
	"/ghconnect.featuregate.v1.FeatureGateService/ReportContributions": "contributions-source",
	// A person gets only their own part (the gate checks).
	"/ghconnect.featuregate.v1.FeatureGateService/GetContributionsStatus": "account-holder admin auditor",
	"/ghconnect.featuregate.v1.FeatureGateService/RegisterUsers":          "account-holder admin",
	// Vulnerability data is GitHub.com's public advisories: the server's
	// services read it; admins and auditors see the sync.
	"/ghconnect.featuregate.v1.FeatureGateService/ListAdvisories":            "admin auditor feature-client",
	"/ghconnect.featuregate.v1.FeatureGateService/WatchAdvisories":           "admin auditor feature-client",
	"/ghconnect.featuregate.v1.FeatureGateService/GetAdvisorySyncStatus":     "admin auditor",
	"/ghconnect.featuregate.v1.FeatureGateService/DownloadAction":            "actions-runner",
	"/ghconnect.featuregate.v1.FeatureGateService/GetActionsPolicy":          "admin auditor",
	"/ghconnect.featuregate.v1.FeatureGateService/UpdateActionsPolicy":       "admin",
	"/ghconnect.featuregate.v1.FeatureGateService/GetActionsStatus":          "admin auditor",
	"/ghconnect.featuregate.v1.FeatureGateService/ReportLicensedUsers":       "license-source",
	"/ghconnect.featuregate.v1.FeatureGateService/GetLicenseSyncStatus":      "admin auditor",
	"/ghconnect.featuregate.v1.FeatureGateService/ReportServerStatistics":    "stats-source",
	"/ghconnect.featuregate.v1.FeatureGateService/GetServerStatisticsStatus": "admin auditor",
	// Only the brokers of a fleet ask each other.
	"/ghconnect.broker.v1.BrokerPeerService/FetchToken":        "broker",
	"/ghconnect.broker.v1.BrokerPeerService/RevokeHeldTokens":  "broker",
	"/ghconnect.broker.v1.BrokerPeerService/RevokeHeldToken":   "broker",
	"/ghconnect.broker.v1.BrokerPeerService/PeerSigningStatus": "broker",
	"/ghconnect.broker.v1.BrokerPeerService/OfferToken":        "broker",
}

func TestEveryMethodHasItsCallers(t *testing.T) {
	rules := DefaultRules()
	seen := map[string]bool{}
	for _, sd := range []grpc.ServiceDesc{registryv1.ConnectionRegistryService_ServiceDesc, brokerv1.TokenBrokerService_ServiceDesc, brokerv1.BrokerPeerService_ServiceDesc, featuregatev1.FeatureGateService_ServiceDesc} {
		var names []string
		for _, m := range sd.Methods {
			names = append(names, m.MethodName)
		}
		for _, s := range sd.Streams {
			names = append(names, s.StreamName)
		}
		for _, name := range names {
			fm := "/" + sd.ServiceName + "/" + name
			seen[fm] = true
			want, ok := whoMayCall[fm]
			if !ok {
				t.Errorf("%s: nobody decided who may call it (add it to roles.json and to whoMayCall)", fm)
				continue
			}
			if got := strings.Join(rules.RolesFor(fm), " "); got != want {
				t.Errorf("%s: callable by %q, want %q", fm, got, want)
			}
		}
	}
	for fm := range whoMayCall {
		if !seen[fm] {
			t.Errorf("%s: listed but no service has it", fm)
		}
	}
	// Nothing in roles.json names a method that does not exist.
	for _, role := range rules.Roles() {
		for fm := range rules.methods[role] {
			if !seen[fm] {
				t.Errorf("role %s lists %s, which no service has", role, fm)
			}
		}
	}
}

func resolve(t *testing.T, r *Rules, caller string, md metadata.MD) (Principal, error) {
	t.Helper()
	return r.Resolve(metadata.NewIncomingContext(context.Background(), md), Principal{Name: caller, Method: "bearer"})
}

func TestResolveAndAllow(t *testing.T) {
	r := DefaultRules()
	const disconnect = "/ghconnect.registry.v1.ConnectionRegistryService/Disconnect"
	const get = "/ghconnect.registry.v1.ConnectionRegistryService/GetConnection"

	// A service's own token may not disconnect (the hole issue 15 found).
	for _, svc := range []string{"broker", "featuregate", "gateway", "registry", "stranger"} {
		p, err := resolve(t, r, svc, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Allows(p, disconnect) {
			t.Errorf("%s may disconnect", svc)
		}
	}
	p, _ := resolve(t, r, "admin", nil)
	if !r.Allows(p, disconnect) {
		t.Error("the admin principal may not disconnect")
	}

	// The gateway vouches for a person: the call becomes theirs.
	p, err := resolve(t, r, "gateway", metadata.Pairs(UserHeader, "mona@example.com", RolesHeader, "auditor"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Principal{Name: "mona@example.com", Method: "forwarded", Roles: []string{"auditor"}, Via: "gateway"}); !reflect.DeepEqual(p, want) {
		t.Errorf("forwarded: %+v, want %+v", p, want)
	}
	if !r.Allows(p, get) || r.Allows(p, disconnect) {
		t.Error("an auditor reads and changes nothing")
	}
	// A person without roles may do nothing.
	p, _ = resolve(t, r, "gateway", metadata.Pairs(UserHeader, "nobody@example.com"))
	if r.Allows(p, get) {
		t.Error("a person without roles may read")
	}

	for name, tc := range map[string]struct {
		caller string
		md     metadata.MD
		code   codes.Code
	}{
		"not a forwarder":       {"admin", metadata.Pairs(UserHeader, "mona"), codes.PermissionDenied},
		"roles without user":    {"broker", metadata.Pairs(RolesHeader, "admin"), codes.PermissionDenied},
		"role it may not vouch": {"gateway", metadata.Pairs(UserHeader, "mona", RolesHeader, "admin,registry"), codes.PermissionDenied},
		"two users":             {"gateway", metadata.Pairs(UserHeader, "mona", UserHeader, "hubot"), codes.Unauthenticated},
		"empty user":            {"gateway", metadata.Pairs(UserHeader, " "), codes.Unauthenticated},
	} {
		if _, err := resolve(t, r, tc.caller, tc.md); status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", name, err, tc.code)
		}
	}
}

func TestLoadRules(t *testing.T) {
	r, err := LoadRules(writeFile(t, `{"principals": {"search-svc": ["feature-client", "token-client"], "ops": ["auditor"]}, "forwarders": {"portal": ["auditor"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := resolve(t, r, "ops", nil)
	if !r.Allows(p, "/ghconnect.registry.v1.ConnectionRegistryService/ListConnectionHistory") {
		t.Error("ops (auditor) may not read history")
	}
	// The file replaces the default members: "admin" is not in it.
	p, _ = resolve(t, r, "admin", nil)
	if r.Allows(p, "/ghconnect.registry.v1.ConnectionRegistryService/Disconnect") {
		t.Error("admin kept its default role")
	}
	for name, body := range map[string]string{
		"unknown role":  `{"principals": {"x": ["superuser"]}}`,
		"unknown field": `{"principal": {"x": ["admin"]}}`,
		"empty name":    `{"principals": {"": ["admin"]}}`,
		"not json":      `principals: x`,
	} {
		if _, err := LoadRules(writeFile(t, body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := r.Grant("x", "nope"); err == nil {
		t.Error("granted an unknown role")
	}
}

func TestPermit(t *testing.T) {
	r := DefaultRules()
	const extra = "/ghconnect.bench.Noop/Ping"
	p, _ := resolve(t, r, "stranger", nil)
	if r.Allows(p, extra) {
		t.Fatal("a method of no role is allowed")
	}
	if err := r.Permit(extra, "token-client", "no-such-role"); err == nil {
		t.Fatal("an unknown role was accepted")
	}
	if r.Allows(p, extra) {
		t.Fatal("a refused Permit changed the rules")
	}
	if err := r.Permit(extra, "token-client"); err != nil {
		t.Fatal(err)
	}
	if !r.Allows(p, extra) {
		t.Error("a token client may not call the permitted method")
	}
	if person, _ := resolve(t, r, "gateway", metadata.Pairs(UserHeader, "mona", RolesHeader, "auditor")); r.Allows(person, extra) {
		t.Error("a role not named may call the permitted method")
	}
}
