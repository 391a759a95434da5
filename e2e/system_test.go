package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/pkg/devca"
	"github.com/ghconnect/ghconnect/pkg/testenv"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
	// vaultdev is linked in from testenv's cache of it.
	vaultOnce sync.Once
	vaultErr  error
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..")
}

// build compiles every binary once per test run. The registry is the
// crash tests' build (-tags crashpoints: its -crash-after and -crash-mode
// flags); make build, make run and the images build it without them.
func build(t *testing.T) string {
	testenv.SkipIfShort(t, "builds and starts the services as processes")
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "ghconnect-e2e-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-tags", "crashpoints", "-o", binDir+"/", "./services/registry/cmd/registry", "./services/registry/cmd/mintlicense",
			"./services/broker/cmd/broker", "./services/featuregate/cmd/featuregate", "./services/gateway/cmd/gateway",
			"./services/gateway/cmd/ghconnectctl", "./dev/ghemu/cmd/ghemu", "./dev/oidcdev/cmd/oidcdev")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%v\n%s", err, out)
			return
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	vaultOnce.Do(func() {
		vaultErr = os.Symlink(testenv.VaultBinary(t), filepath.Join(binDir, "vaultdev"))
	})
	if vaultErr != nil {
		t.Fatalf("vaultdev: %v", vaultErr)
	}
	return binDir
}

// system is the whole of ghconnect, each part its own process.
type system struct {
	t      *testing.T
	bin    string
	dir    string
	port   map[string]int
	procs  map[string]*exec.Cmd
	tokens map[string]string
	args   map[string][]string
	vault  string
	emu    string
	gw     string
	// pki is the system's CA and a certificate per principal: every gRPC
	// hop is mutual TLS and the gateway serves HTTPS.
	pki devca.Files
	// http trusts the system's CA; browser also does not follow redirects.
	http, browser *http.Client
	// cutOff, when set, also ends the requests of both clients (see
	// crash).
	cutOff atomic.Pointer[context.Context]
	opts   systemOptions
	// callersRegistry is the registry the broker, the feature gate and
	// the gateway talk to.
	callersRegistry string
	// dbs are the services' databases by name, as their -database DSNs.
	dbs map[string]string
}

// systemOptions vary the system; the zero value is one registry on SQLite.
type systemOptions struct {
	// RegistryDB is the registries' database (default a SQLite file).
	RegistryDB string
	// Registries is how many registry processes share it: "registry",
	// "registry2", … (default 1).
	Registries int
	// RegistryArgs are added to every registry's arguments (a flag given
	// again overrides the default one).
	RegistryArgs []string
}

// registries names the registry processes.
func (s *system) registries() []string {
	names := []string{"registry"}
	for i := 2; i <= s.opts.Registries; i++ {
		names = append(names, fmt.Sprintf("registry%d", i))
	}
	return names
}

// principals with a certificate: the services, and three callers
// (contrib-source is the server's source of contribution counts).
var principals = []string{"registry", "broker", "featuregate", "gateway", "admin", "search-svc", "contrib-source"}

// serveTLS are a gRPC service's flags for mutual TLS with its callers.
func (s *system) serveTLS(name string) []string {
	return []string{"-tls-cert", s.pki.Cert(name), "-tls-key", s.pki.Key(name), "-client-ca", s.pki.CA(), "-require-client-cert"}
}

// trustPKI makes the test's HTTP clients trust the system's CA (the
// gateway serves HTTPS).
func (s *system) trustPKI() {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(readFile(s.t, s.pki.CA())))
	base := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	s.t.Cleanup(base.CloseIdleConnections)
	transport := cutOffTransport{base: base, cutOff: &s.cutOff}
	s.http = &http.Client{Transport: transport}
	jar, _ := cookiejar.New(nil)
	s.browser = &http.Client{Transport: transport, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// cutOffTransport ends each request also when the context cutOff points
// to (if any) ends.
type cutOffTransport struct {
	base   http.RoundTripper
	cutOff *atomic.Pointer[context.Context]
}

func (c cutOffTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	cut := c.cutOff.Load()
	if cut == nil {
		return c.base.RoundTrip(req)
	}
	ctx, cancel := context.WithCancel(req.Context())
	stop := context.AfterFunc(*cut, cancel)
	resp, err := c.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		stop()
		cancel()
		return nil, err
	}
	// The body is read after RoundTrip returns: release the context when
	// it is closed.
	resp.Body = cutOffBody{ReadCloser: resp.Body, done: func() { stop(); cancel() }}
	return resp, nil
}

type cutOffBody struct {
	io.ReadCloser
	done func()
}

func (b cutOffBody) Close() error {
	err := b.ReadCloser.Close()
	b.done()
	return err
}

// signIn signs the test's browser in as admin@example.com, an admin, when
// the gateway has single sign-on (GitHub.com's redirects back are taken
// only in a signed-in admin's browser): the redirect flow through the
// development identity provider, answering its sign-in form.
func (s *system) signIn() {
	s.t.Helper()
	resp, err := s.browser.Get(s.gw + "/auth/session")
	if err != nil {
		s.t.Fatal(err)
	}
	var info struct{ SSO bool }
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil {
		s.t.Fatal(err)
	}
	// Signed in already (the gateway keeps sessions in its database, so
	// a restart does not sign anyone out), or nothing to sign in to.
	if resp.StatusCode == http.StatusUnauthorized && info.SSO {
		authorize, err := url.Parse(next(s.t)(s.browser.Get(s.gw + "/auth/login")))
		if err != nil {
			s.t.Fatal(err)
		}
		form := authorize.Query()
		form.Set("dev_login", "admin@example.com")
		form.Set("dev_groups", "ghconnect-admins")
		authorize.RawQuery = ""
		callback := next(s.t)(s.browser.PostForm(authorize.String(), form))
		if home := next(s.t)(s.browser.Get(callback)); home != "/" {
			s.t.Fatalf("sign-in ended at %s", home)
		}
	}
}

// tlsArgs are a gRPC service's TLS flags, both ways.
func (s *system) tlsArgs(name string) []string { return append(s.serveTLS(name), s.dialTLS(name)...) }

// dialTLS are a service's flags for the calls it makes: its certificate
// names it, so it sends no token.
func (s *system) dialTLS(name string) []string {
	return []string{"-dial-ca", s.pki.CA(), "-dial-cert", s.pki.Cert(name), "-dial-key", s.pki.Key(name)}
}

// handedOut are the ports freePort has given out in this test binary: the
// kernel may offer a port again once its probe listener is closed, and two
// processes told the same port would collide (a replicated system asks for
// twenty).
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freePort is a loopback port nothing listens on, never the same twice.
func freePort(t *testing.T) int {
	handedOut.Lock()
	defer handedOut.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port
		}
	}
}

func randomToken() string {
	b := make([]byte, 20)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *system) file(name, body string) string {
	p := filepath.Join(s.dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return p
}

func (s *system) addr(name string) string { return fmt.Sprintf("127.0.0.1:%d", s.port[name]) }

// start launches one process, its output in <dir>/<name>.log (and stdout
// in <name>.out for the dev tools that print their address).
func (s *system) start(name string, env []string, args ...string) {
	s.t.Helper()
	cmd := exec.Command(filepath.Join(s.bin, args[0]), args[1:]...)
	logf, err := os.OpenFile(filepath.Join(s.dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stderr = logf
	cmd.Stdout = logf
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.procs[name] = cmd
	s.args[name] = args
}

func (s *system) stop(name string) {
	if cmd := s.procs[name]; cmd != nil && cmd.ProcessState == nil {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
}

// waitExit waits for a process that is meant to end by itself (a crash).
func (s *system) waitExit(name string) {
	done := make(chan struct{})
	go func() { s.procs[name].Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		s.t.Fatalf("%s did not exit", name)
	}
}

func (s *system) waitHTTP(name, u string) {
	s.t.Helper()
	// On a failure newSystem's cleanup shows the end of each process's
	// log, this one's among them.
	testenv.EventuallyErr(s.t, 20*time.Second, name+" is healthy at "+u, func() error {
		resp, err := s.http.Get(u)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("it answers %s", resp.Status)
		}
		return nil
	})
}

// registryArgsFor are the arguments of the registry process name.
func (s *system) registryArgsFor(name string) []string {
	db := s.opts.RegistryDB
	if db == "" {
		db = "sqlite:" + filepath.Join(s.dir, "registry.db")
	}
	args := []string{"registry", "-grpc-addr", s.addr(name), "-http-addr", s.addr(name + "-http"),
		"-database", db, "-tokens-file", filepath.Join(s.dir, "tokens"), "-authz-file", filepath.Join(s.dir, "authz.json"),
		"-license-issuers", filepath.Join(s.dir, "issuers.txt"), "-vault-addr", s.vault,
		"-server-hostname", "ghes.example.com", "-server-version", "3.14.2", "-license-file", filepath.Join(s.dir, "license"),
		"-vault-role-id-file", filepath.Join(s.dir, "vault-creds", "registry-role-id"), "-vault-secret-id-file", filepath.Join(s.dir, "vault-creds", "registry-secret-id"),
		"-key-check-every", "1s", "-github-url", s.emu, "-github-web-url", s.emu, "-broker-addr", s.addr("broker"), "-featuregate-addr", s.addr("featuregate"),
		"-orphan-key-grace", "2s", "-reconcile-every", "500ms", "-leader-retry", "500ms"}
	return append(append(args, s.tlsArgs("registry")...), s.opts.RegistryArgs...)
}

// startRegistry (re)starts the registry; crashAfter makes it exit after
// that step.
func (s *system) startRegistry(crashAfter string) {
	var args []string
	if crashAfter != "" {
		args = []string{"-crash-after", crashAfter}
	}
	s.startRegistryNamed("registry", args)
}

// startRegistryNamed starts the registry process name with args added to
// its arguments (after systemOptions.RegistryArgs).
func (s *system) startRegistryNamed(name string, args []string) {
	s.start(name, nil, append(s.registryArgsFor(name), args...)...)
	s.waitHTTP(name, "http://"+s.addr(name+"-http")+"/readyz")
}

// startSystem starts one process of each part, the registry and the
// feature gate on SQLite.
func startSystem(t *testing.T) *system { return startSystemWith(t, systemOptions{}) }

func startSystemWith(t *testing.T, opts systemOptions) *system {
	s := newSystem(t)
	s.opts, s.callersRegistry = opts, "registry"
	for _, n := range s.registries()[1:] {
		s.port[n], s.port[n+"-http"] = freePort(t), freePort(t)
	}
	for _, n := range s.registries() {
		s.startRegistryNamed(n, nil)
	}
	s.dbs["registry"] = s.opts.RegistryDB
	if s.dbs["registry"] == "" {
		s.dbs["registry"] = "sqlite:" + filepath.Join(s.dir, "registry.db")
	}
	s.dbs["broker"], s.dbs["featuregate"] = "sqlite:"+filepath.Join(s.dir, "broker.db"), "sqlite:"+filepath.Join(s.dir, "featuregate.db")
	s.dbs["gateway"] = "sqlite:" + filepath.Join(s.dir, "gateway.db")
	s.startCallers()
	return s
}

// startCallers starts the broker, the feature gate and the gateway,
// talking to s.callersRegistry.
func (s *system) startCallers() {
	reg := s.addr(s.callersRegistry)
	s.start("broker", nil, append([]string{"broker", "-grpc-addr", s.addr("broker"), "-http-addr", s.addr("broker-http"), "-tokens-file", filepath.Join(s.dir, "tokens"), "-authz-file", filepath.Join(s.dir, "authz.json"),
		"-policy", filepath.Join(s.dir, "policy.json"), "-vault-addr", s.vault,
		"-vault-role-id-file", filepath.Join(s.dir, "vault-creds", "broker-role-id"), "-vault-secret-id-file", filepath.Join(s.dir, "vault-creds", "broker-secret-id"),
		"-github-url", s.emu, "-github-web-url", s.emu, "-database", "sqlite:" + filepath.Join(s.dir, "broker.db"), "-registry-addr", reg}, s.tlsArgs("broker")...)...)
	s.waitHTTP("broker", "http://"+s.addr("broker-http")+"/readyz")
	s.start("featuregate", nil, append([]string{"featuregate", "-grpc-addr", s.addr("featuregate"), "-http-addr", s.addr("featuregate-http"),
		"-database", "sqlite:" + filepath.Join(s.dir, "featuregate.db"), "-tokens-file", filepath.Join(s.dir, "tokens"), "-authz-file", filepath.Join(s.dir, "authz.json"),
		"-registry-addr", reg, "-broker-addr", s.addr("broker"), "-github-url", s.emu}, s.tlsArgs("featuregate")...)...)
	s.waitHTTP("featuregate", "http://"+s.addr("featuregate-http")+"/readyz")
	s.gw = "https://" + s.addr("gateway")
	s.start("gateway", nil, append([]string{"gateway", "-addr", s.addr("gateway"), "-http-addr", s.addr("gateway-http"), "-registry-addr", reg, "-broker-addr", s.addr("broker"),
		"-featuregate-addr", s.addr("featuregate"), "-tls-cert", s.pki.Cert("gateway"), "-tls-key", s.pki.Key("gateway"),
		"-github-web-url", s.emu}, append(s.ssoArgs(), s.dialTLS("gateway")...)...)...)
	s.waitHTTP("gateway", s.gw+"/readyz")
}

// pointCallersAt restarts the broker, the feature gate and the gateway
// talking to the registry process name. The browser signed in before is
// still signed in after: the gateway keeps sessions in its database.
func (s *system) pointCallersAt(name string) {
	s.t.Helper()
	signedIn := s.sessionStatus() == http.StatusOK
	for _, n := range []string{"gateway", "featuregate", "broker"} {
		s.stop(n)
	}
	s.callersRegistry = name
	s.startCallers()
	if got := s.sessionStatus(); signedIn && got != http.StatusOK {
		s.t.Fatalf("the gateway's restart signed the browser out: /auth/session answers %d", got)
	}
}

// sessionStatus is the status of the browser's /auth/session (200 when
// it is signed in).
func (s *system) sessionStatus() int {
	s.t.Helper()
	resp, err := s.browser.Get(s.gw + "/auth/session")
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// newSystem writes the secrets and certificates and starts what every
// topology shares: Vault (set up) and the GitHub emulator.
func newSystem(t *testing.T) *system {
	s := &system{t: t, bin: build(t), dir: t.TempDir(), port: map[string]int{}, procs: map[string]*exec.Cmd{}, tokens: map[string]string{}, args: map[string][]string{},
		dbs: map[string]string{}}
	t.Cleanup(func() {
		if t.Failed() { // what each process said last, for the failure's cause
			for n := range s.procs {
				if raw, err := os.ReadFile(filepath.Join(s.dir, n+".log")); err == nil {
					lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
					t.Logf("--- %s.log (last lines):\n%s", n, strings.Join(lines[max(0, len(lines)-15):], "\n"))
				}
			}
		}
		// The services first (whatever replicas a test started), then what
		// they depend on.
		for n := range s.procs {
			if n != "ghemu" && n != "vaultdev" {
				s.stop(n)
			}
		}
		s.stop("ghemu")
		s.stop("vaultdev")
	})
	for _, n := range []string{"registry", "registry-http", "broker", "broker-http", "featuregate", "featuregate-http", "gateway", "gateway-http", "vault", "emu", "idp"} {
		s.port[n] = freePort(t)
	}
	var lines []string
	for _, p := range []string{"admin", "registry", "broker", "featuregate", "gateway", "search-svc", "contrib-source", "vault", "runner"} {
		s.tokens[p] = randomToken()
		sum := sha256.Sum256([]byte(s.tokens[p]))
		lines = append(lines, p+" sha256:"+hex.EncodeToString(sum[:]))
		s.file(p+"-token", s.tokens[p])
	}
	s.file("tokens", strings.Join(lines, "\n")+"\n")
	s.pki = devca.Files{Dir: filepath.Join(s.dir, "tls")}
	if _, err := devca.Ensure(s.pki.Dir, principals, devca.DefaultHosts); err != nil {
		t.Fatal(err)
	}
	s.trustPKI()
	s.file("policy.json", `{"callers": {
		"featuregate": {"connections": ["*"], "permissions": {"contents": "read", "issues": "read", "metadata": "read"}, "repositories": ["*"], "user_tokens": true},
		"search-svc": {"connections": ["*"], "permissions": {"contents": "read", "issues": "read", "metadata": "read"}, "repositories": ["*"], "exclusive": true},
		"registry": {"connections": ["*"], "permissions": {"metadata": "read"}, "repositories": ["*"], "admin": true}}}`)
	// Who may call what: the default members; search-svc, an internal
	// service using the feature gate; contrib-source, the server's source
	// of contribution counts (by certificate over gRPC, by token over REST);
	// runner, the server's Actions runners (by token, through the gateway).
	// contrib-source also stands for the server's sources of licensed users
	// and of aggregate counts.
	s.file("authz.json", `{"principals": {"*": ["token-client"], "admin": ["admin"], "registry": ["registry"], "broker": ["broker"], "featuregate": ["featuregate"],
		"gateway": ["gateway"], "search-svc": ["feature-client"], "contrib-source": ["contributions-source", "license-source", "stats-source"],
		"runner": ["actions-runner"]},
		"forwarders": {"gateway": ["admin", "auditor", "account-holder"]}}`)
	out, err := exec.Command(filepath.Join(s.bin, "mintlicense"), "-issuer-key", filepath.Join(s.dir, "issuer.key"), "-issuers-out", filepath.Join(s.dir, "issuers.txt")).Output()
	if err != nil {
		t.Fatal(err)
	}
	s.file("license", strings.TrimSpace(string(out)))

	s.vault = "http://" + s.addr("vault")
	s.start("vaultdev", nil, "vaultdev", "-addr", s.addr("vault"), "-root-token", s.tokens["vault"], "-data-dir", filepath.Join(s.dir, "vault"),
		"-audit-file", filepath.Join(s.dir, "vault-audit.log"))
	s.waitHTTP("vaultdev", s.vault+"/v1/sys/health")
	// The setup step, once, with the root token; no service gets it.
	if out, err := exec.Command(filepath.Join(s.bin, "ghconnectctl"), "vault-setup", "-vault-addr", s.vault, "-vault-token-file", filepath.Join(s.dir, "vault-token"),
		"-policies", filepath.Join(repoRoot(), "deploy", "vault"), "-out", filepath.Join(s.dir, "vault-creds")).CombinedOutput(); err != nil {
		t.Fatalf("vault-setup: %v\n%s", err, out)
	}
	s.emu = "http://" + s.addr("emu")
	// The state file is written when the emulator stops: it holds the
	// Apps' client secrets, which the secret scan looks for.
	// GitHub.com approves the admin's creation and installation at once
	// (-auto-approve), but for the tests of its pages, which turn it off.
	s.start("ghemu", nil, "ghemu", "-addr", s.addr("emu"), "-seed", filepath.Join(repoRoot(), "dev", "ghemu", "seed.example.json"), "-contract", "-auto-approve",
		"-state-file", filepath.Join(s.dir, "ghemu-state.json"))
	s.waitHTTP("ghemu", s.emu+"/meta")
	// The identity provider admins sign in with (single sign-on).
	s.file("oidc-client-secret", randomToken())
	s.start("oidcdev", nil, "oidcdev", "-addr", s.addr("idp"), "-client-id", "ghconnect-gateway", "-client-secret-file", filepath.Join(s.dir, "oidc-client-secret"))
	s.waitHTTP("oidcdev", s.issuer()+"/.well-known/openid-configuration")
	return s
}

// issuer is the identity provider's issuer URL.
func (s *system) issuer() string { return "http://" + s.addr("idp") + "/oidc" }

// ssoArgs make the gateway sign people in through the system's identity
// provider (members of ghconnect-admins are admins, of
// ghconnect-auditors auditors), keeping sessions in s.dbs["gateway"].
func (s *system) ssoArgs() []string {
	return []string{"-oidc-issuer", s.issuer(), "-oidc-client-id", "ghconnect-gateway", "-oidc-client-secret-file", filepath.Join(s.dir, "oidc-client-secret"),
		"-public-url", s.gw, "-database", s.dbs["gateway"]}
}

// rest calls the gateway as the admin; it returns the status and the
// decoded body.
func (s *system) rest(method, path string, body any) (int, map[string]any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, s.gw+path, rd)
	req.Header.Set("Authorization", "Bearer "+s.tokens["admin"])
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	// A body that is no JSON object leaves out nil: callers look at the
	// status first.
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (s *system) mustREST(method, path string, body any) map[string]any {
	s.t.Helper()
	code, out := s.rest(method, path, body)
	if code != http.StatusOK {
		s.t.Fatalf("%s %s: %d %v", method, path, code, out)
	}
	return out
}

func (s *system) connection(id string) map[string]any {
	return s.mustREST("GET", "/v1/connections/"+id, nil)["connection"].(map[string]any)
}

// create connects the server to octo-org (PENDING).
func (s *system) create() string { return s.createFor("octo-org") }

// createFor connects the server to the organization login (PENDING); the
// hostname and version are the registry's own (-server-hostname,
// -server-version).
func (s *system) createFor(login string) string {
	return s.createKind("ACCOUNT_KIND_ORGANIZATION", login)
}

// createKind starts a connection to the account of that kind and login.
func (s *system) createKind(kind, login string) string {
	out := s.mustREST("POST", "/v1/connections", map[string]any{"requestId": "e2e-" + randomToken()[:8],
		"license": readFile(s.t, filepath.Join(s.dir, "license")), "account": map[string]any{"kind": kind, "login": login}})
	return out["connection"].(map[string]any)["id"].(string)
}

func readFile(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// next takes one step of a browser through a redirect chain.
func next(t *testing.T) func(*http.Response, error) string {
	return func(resp *http.Response, err error) string { return location(t, resp, err) }
}

func location(t *testing.T, resp *http.Response, err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK && gitHubPage.Match(body) {
		// GitHub.com's page asks the admin to confirm (create the App,
		// install it): they press its first button with what the page
		// chose for them (all repositories).
		next, err := approve(t, resp.Request.URL, body)
		return location(t, next, err)
	}
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("browser got %d: %s", resp.StatusCode, body)
	}
	return resp.Header.Get("Location")
}

var (
	// gitHubPage is an emulated GitHub.com page with a form to confirm.
	gitHubPage = regexp.MustCompile(`<form method="post" action="[^"]+">`)
	formRe     = regexp.MustCompile(`(?s)<form method="post" action="([^"]+)">(.*?)</form>`)
	inputRe    = regexp.MustCompile(`<input type="(hidden|radio)"[^>]*?name="([^"]+)" value="([^"]*)"( checked)?>`)
)

// approve submits the page's first form as a browser would: its hidden
// fields and checked radio buttons.
func approve(t *testing.T, page *url.URL, body []byte) (*http.Response, error) {
	t.Helper()
	m := formRe.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no form on the page: %s", body)
	}
	action, err := page.Parse(html.UnescapeString(string(m[1])))
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{}
	for _, in := range inputRe.FindAllSubmatch(m[2], -1) {
		if string(in[1]) == "hidden" || len(in[4]) > 0 {
			form.Add(html.UnescapeString(string(in[2])), html.UnescapeString(string(in[3])))
		}
	}
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return browser.PostForm(action.String(), form)
}

// enable runs the administrator's manifest flow in a "browser" and
// returns the connection id.
func (s *system) enable(id string) {
	s.t.Helper()
	s.signIn()
	start := s.mustREST("POST", "/v1/connections/"+id+":startAppManifest", map[string]any{"callbackUrl": s.gw + "/connect/callback"})
	loc := next(s.t)(s.browser.PostForm(start["postUrl"].(string), url.Values{"manifest": {start["manifest"].(string)}}))
	loc = next(s.t)(s.browser.Get(loc)) // gateway callback → install page
	s.install(loc)
}

func (s *system) install(installURL string) {
	s.t.Helper()
	s.signIn()
	loc := next(s.t)(s.browser.Get(installURL)) // install → setup
	loc = next(s.t)(s.browser.Get(loc))         // gateway setup → admin page
	if !strings.Contains(loc, "connected=") {
		s.t.Fatalf("setup ended at %s", loc)
	}
}

func (s *system) emuJSON(path string, out any) {
	resp, err := s.http.Get(s.emu + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		s.t.Fatalf("%s: %v", path, err)
	}
}

func (s *system) vaultKeyExists(name string) bool {
	req, _ := http.NewRequest("GET", s.vault+"/v1/transit/keys/"+name, nil)
	req.Header.Set("X-Vault-Token", s.tokens["vault"])
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (s *system) ctl(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(s.bin, "ghconnectctl"), append([]string{"-gateway", s.gw, "-ca-file", s.pki.CA(), "-token-file", filepath.Join(s.dir, "admin-token")}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func newKeyPEM(t *testing.T) (*rsa.PrivateKey, string, string) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
}

// logs returns everything every process wrote.
func (s *system) logs() string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(s.dir, "*.log"))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			b.WriteString(sc.Text())
			b.WriteByte('\n')
		}
		fh.Close()
	}
	return b.String()
}

var _ = context.Background
