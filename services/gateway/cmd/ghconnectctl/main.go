// Command ghconnectctl is the operator's CLI: status of connections and
// features, connecting an existing GitHub App, rotating the App key and
// disconnecting, all through the REST gateway with the operator's token.
//
//	ghconnectctl [-gateway URL] [-token-file FILE] status [-connection ID]
//	ghconnectctl connect-existing -connection ID -app-id N -pem FILE [-client-secret-file FILE]
//	ghconnectctl rotate-key -connection ID -pem FILE [-vault-addr URL (-vault-token-file F | -vault-role-id-file F -vault-secret-id-file F)]
//	ghconnectctl disconnect -connection ID [-reason TEXT]
//	ghconnectctl vault-setup -vault-addr URL -vault-token-file ADMIN_TOKEN_FILE -out DIR [-policies deploy/vault]
//	ghconnectctl tls-init -out DIR [-hosts 127.0.0.1,localhost] [-names registry,broker,featuregate,gateway]
//
// -ca-file trusts a CA for an https:// gateway (the local CA of make run:
// .data/tls/ca.pem). tls-init makes a development CA and one certificate
// per service (kept while still good).
//
// rotate-key sends the private key to the gateway only over https; with
// -vault-addr it imports the key straight into Vault as the operator and
// waits for the registry to adopt the new version.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ghconnect/ghconnect/pkg/config"
	"github.com/ghconnect/ghconnect/pkg/devca"
	"github.com/ghconnect/ghconnect/pkg/vaultauth"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ghconnectctl:", err)
		os.Exit(1)
	}
}

type client struct {
	base  string
	token string
	http  *http.Client
}

// do calls the gateway and decodes its JSON answer; a gateway error
// becomes an error carrying the server's message.
func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.base, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
		}
		// A body that is no JSON error leaves Message empty: the status
		// still says what happened.
		_ = json.Unmarshal(raw, &e)
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, e.Message)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func realMain(ctx context.Context, args []string, stdout io.Writer) error {
	global := flag.NewFlagSet("ghconnectctl", flag.ContinueOnError)
	base := global.String("gateway", envOr("GHCONNECT_GATEWAY_URL", "http://127.0.0.1:8080"), "REST gateway URL")
	tokenFile := global.String("token-file", os.Getenv("GHCONNECT_TOKEN_FILE"), "file holding the operator's bearer token")
	caFile := global.String("ca-file", os.Getenv("GHCONNECT_CA_FILE"), "CA certificates (PEM) to trust for an https:// gateway, besides the system's")
	if err := global.Parse(args); err != nil {
		return err
	}
	if global.NArg() == 0 {
		return errors.New("usage: ghconnectctl [flags] status|connect-existing|rotate-key|disconnect|vault-setup [flags]")
	}
	switch global.Arg(0) {
	case "vault-setup":
		return vaultSetup(ctx, global.Args()[1:], stdout)
	case "tls-init":
		return tlsInit(global.Args()[1:], stdout)
	}
	if *tokenFile == "" {
		return errors.New("-token-file (or GHCONNECT_TOKEN_FILE) is required")
	}
	raw, err := os.ReadFile(*tokenFile) //nolint:gosec // G703: the operator's own flag, read with the operator's rights
	if err != nil {
		return err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if *caFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pemCA, err := os.ReadFile(*caFile) //nolint:gosec // G703: the operator's own flag, as above
		if err != nil {
			return err
		}
		if !pool.AppendCertsFromPEM(pemCA) {
			return fmt.Errorf("-ca-file %s holds no certificate", *caFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	c := &client{base: *base, token: strings.TrimSpace(string(raw)), http: &http.Client{Timeout: 2 * time.Minute, Transport: transport}}
	cmd, rest := global.Arg(0), global.Args()[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	id := fs.String("connection", "", "connection id")
	appID := fs.Int64("app-id", 0, "GitHub App id")
	pemFile := fs.String("pem", "", "file holding the App's private key (PEM)")
	secretFile := fs.String("client-secret-file", "", "connect-existing: file holding one of the App's client secrets (for users' GitHub.com links)")
	reason := fs.String("reason", "", "why (kept in the history)")
	var operator vaultauth.Flags
	operator.RegisterFlags(fs, os.Getenv("VAULT_ADDR"))
	wait := fs.Duration("wait", 2*time.Minute, "rotate-key through Vault: how long to wait for the registry to adopt the new version")
	if err := fs.Parse(rest); err != nil {
		return err
	}
	need := func(names ...string) error {
		for _, n := range names {
			if f := fs.Lookup(n); f.Value.String() == "" || f.Value.String() == "0" {
				return fmt.Errorf("%s: -%s is required", cmd, n)
			}
		}
		return nil
	}
	var out struct {
		Connection map[string]any `json:"connection"`
	}
	switch cmd {
	case "status":
		return status(ctx, c, *id, stdout)
	case "connect-existing":
		if err := need("connection", "app-id", "pem"); err != nil {
			return err
		}
		key, err := os.ReadFile(*pemFile)
		if err != nil {
			return err
		}
		defer clear(key)
		body := map[string]any{"appId": fmt.Sprint(*appID), "privateKeyPem": string(key)}
		if *secretFile != "" {
			secret, err := config.ReadSecret(*secretFile)
			if err != nil {
				return err
			}
			body["clientSecret"] = secret
		}
		err = c.do(ctx, http.MethodPost, "/v1/connections/"+*id+":connectExistingApp", body, &out)
		if err != nil {
			return err
		}
	case "rotate-key":
		if err := need("connection", "pem"); err != nil {
			return err
		}
		key, err := os.ReadFile(*pemFile)
		if err != nil {
			return err
		}
		defer clear(key)
		if operator.Addr != "" {
			return rotateInVault(ctx, c, &operator, *id, key, *wait, stdout)
		}
		if !strings.HasPrefix(c.base, "https://") {
			return errors.New("rotate-key: refusing to send a private key over plain HTTP: use an https:// gateway, or import it straight into Vault with -vault-addr and the operator's Vault login (-vault-token-file, or -vault-role-id-file and -vault-secret-id-file)")
		}
		if err := c.do(ctx, http.MethodPost, "/v1/connections/"+*id+":rotateAppKey", map[string]any{"privateKeyPem": string(key)}, &out); err != nil {
			return err
		}
	case "disconnect":
		if err := need("connection"); err != nil {
			return err
		}
		if err := c.do(ctx, http.MethodPost, "/v1/connections/"+*id+":disconnect", map[string]any{"reason": *reason}, &out); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
	return printConnection(stdout, out.Connection)
}

// tlsInit makes (or keeps) a development CA and a certificate per service.
func tlsInit(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("tls-init", flag.ContinueOnError)
	out := fs.String("out", "", "folder for ca.pem, ca-key.pem, <name>.pem and <name>-key.pem")
	hosts := fs.String("hosts", strings.Join(devca.DefaultHosts, ","), "comma-separated DNS names and IP addresses the certificates are valid for")
	names := fs.String("names", strings.Join(devca.Services, ","), "comma-separated principals to make a certificate for (each certificate's common name)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("tls-init: -out is required")
	}
	split := func(s string) []string {
		var r []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				r = append(r, p)
			}
		}
		return r
	}
	if len(split(*names)) == 0 || len(split(*hosts)) == 0 {
		return errors.New("tls-init: -names and -hosts must not be empty")
	}
	written, err := devca.Ensure(*out, split(*names), split(*hosts))
	for _, w := range written {
		fmt.Fprintln(stdout, "wrote", w)
	}
	return err
}

func printConnection(w io.Writer, c map[string]any) error {
	tk, _ := c["transitKey"].(map[string]any)
	_, err := fmt.Fprintf(w, "connection %v: %v (key %v versions %v, installation %v)\n", c["id"], c["state"], tk["name"], tk["versions"], c["installationId"])
	if n, _ := tk["notice"].(string); n != "" && err == nil {
		_, err = fmt.Fprintf(w, "  key: %s\n", n)
	}
	return err
}

func status(ctx context.Context, c *client, id string, stdout io.Writer) error {
	var list struct {
		Connections []map[string]any `json:"connections"`
	}
	if id != "" {
		var one struct {
			Connection map[string]any `json:"connection"`
		}
		if err := c.do(ctx, http.MethodGet, "/v1/connections/"+id, nil, &one); err != nil {
			return err
		}
		list.Connections = append(list.Connections, one.Connection)
	} else if err := c.do(ctx, http.MethodGet, "/v1/connections?pageSize=100", nil, &list); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONNECTION\tSTATE\tACCOUNT\tSERVER\tAPP\tKEY VERSIONS\tFEATURES ON")
	var notices []string
	for _, conn := range list.Connections {
		acct, _ := conn["account"].(map[string]any)
		app, _ := conn["app"].(map[string]any)
		var settings struct {
			Settings struct {
				Features []struct {
					Feature string `json:"feature"`
					Enabled bool   `json:"enabled"`
				} `json:"features"`
			} `json:"settings"`
		}
		on := []string{}
		if err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/connections/%v/features", conn["id"]), nil, &settings); err == nil {
			for _, f := range settings.Settings.Features {
				if f.Enabled {
					on = append(on, strings.ToLower(strings.TrimPrefix(f.Feature, "FEATURE_")))
				}
			}
		}
		tk, _ := conn["transitKey"].(map[string]any)
		versions := "-"
		if vs, ok := tk["versions"].([]any); ok && len(vs) > 0 {
			versions = strings.Trim(fmt.Sprint(vs), "[]")
		}
		fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%s\t%s\n", conn["id"], strings.TrimPrefix(fmt.Sprint(conn["state"]), "CONNECTION_STATE_"),
			acct["login"], conn["serverHostname"], app["slug"], versions, strings.Join(on, ","))
		if n, _ := tk["notice"].(string); n != "" {
			notices = append(notices, fmt.Sprintf("%v: %s", conn["id"], n))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range notices {
		fmt.Fprintln(stdout, "key:", n)
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
