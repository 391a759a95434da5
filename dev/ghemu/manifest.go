package ghemu

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// manifestCodeLifetime is how long a manifest code can be converted.
const manifestCodeLifetime = time.Hour

// manifestPage is the github.com page a browser posts an App manifest to
// (form field "manifest"). With Options.AutoApprove it creates the App's
// conversion code at once (createFromManifest); otherwise it shows the
// App for the admin to create or cancel (manifestReview, pages.go).
func (e *Emulator) manifestPage(ownerParam string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if e.autoApprove.Load() {
			e.createFromManifest(ownerParam)(w, r)
			return
		}
		e.manifestReview(ownerParam)(w, r)
	}
}

// readManifest reads and checks the posted manifest; a bad one has been
// answered with 422.
func readManifest(w http.ResponseWriter, r *http.Request) (appManifest, bool) {
	// A malformed body leaves the manifest empty, refused below.
	_ = r.ParseForm()
	var m appManifest
	if err := json.Unmarshal([]byte(r.Form.Get("manifest")), &m); err != nil || m.Name == "" || m.URL == "" || m.RedirectURL == "" {
		http.Error(w, "invalid manifest: name, url and redirect_url are required", http.StatusUnprocessableEntity)
		return m, false
	}
	if _, err := url.ParseRequestURI(m.RedirectURL); err != nil {
		http.Error(w, "invalid redirect_url", http.StatusUnprocessableEntity)
		return m, false
	}
	return m, true
}

// manifestOwner is the account a manifest page creates the App for: the
// path's organization or enterprise, or the emulated signed-in person.
// Callers hold e.mu.
func (e *Emulator) manifestOwner(r *http.Request, ownerParam string) *Account {
	if ownerParam != "" {
		return e.account(r.PathValue(ownerParam))
	}
	return e.addAccount("emulator-user", "User")
}

// createFromManifest sends the browser to the manifest's redirect_url with
// a one-time code and the caller's state.
func (e *Emulator) createFromManifest(ownerParam string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m, ok := readManifest(w, r)
		if !ok {
			return
		}
		e.mu.Lock()
		for _, a := range e.apps {
			if strings.EqualFold(a.Name, m.Name) || a.Slug == slugify(m.Name) {
				e.mu.Unlock()
				http.Error(w, "Name is already in use", http.StatusUnprocessableEntity)
				return
			}
		}
		owner := e.manifestOwner(r, ownerParam)
		if owner == nil {
			e.mu.Unlock()
			http.Error(w, "no such account", http.StatusNotFound)
			return
		}
		code := randomHex(10)
		e.codes[code] = &manifestCode{owner: owner, manifest: m, expires: e.nowLocked().Add(manifestCodeLifetime)}
		e.mu.Unlock()
		q := url.Values{"code": {code}}
		if s := r.Form.Get("state"); s != "" {
			q.Set("state", s)
		}
		http.Redirect(w, r, withQuery(m.RedirectURL, q), http.StatusFound)
	}
}

// convertManifest creates the App a manifest describes, with a fresh RSA
// key whose PKCS#1 PEM is returned once, as GitHub does.
func (e *Emulator) convertManifest(w http.ResponseWriter, r *http.Request, _ identity) {
	e.mu.Lock()
	mc := e.codes[r.PathValue("code")]
	valid := mc != nil && !mc.used && e.nowLocked().Before(mc.expires)
	if valid {
		mc.used = true
	}
	e.mu.Unlock()
	if !valid {
		writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/apps/apps#create-a-github-app-from-a-manifest")
		return
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "Server Error", docsURL)
		return
	}
	e.mu.Lock()
	app := e.newApp(AppSpec{Name: mc.manifest.Name, Permissions: mc.manifest.DefaultPermissions, Events: mc.manifest.DefaultEvents, SetupURL: mc.manifest.SetupURL, CallbackURLs: mc.manifest.CallbackURLs, Public: mc.manifest.Public}, mc.owner)
	app.keys[keyID(&key.PublicKey)] = &key.PublicKey
	body := appJSON(app)
	body["client_id"] = app.ClientID
	body["client_secret"] = app.ClientSecret
	body["webhook_secret"] = app.WebhookSecret
	body["pem"] = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	e.mu.Unlock()
	writeJSON(w, http.StatusCreated, body)
}
