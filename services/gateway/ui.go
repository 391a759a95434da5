package gateway

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"slices"
)

//go:embed ui/index.html ui/app.js ui/timeline.js ui/app.css ui/favicon.svg ui/favicon.ico ui/me.html ui/me.js ui/key-rotation.html
var uiFiles embed.FS

// uiPaths are the admin page's files; everything else under / is a 404.
var uiPaths = []string{"/", "/app.js", "/timeline.js", "/app.css", "/favicon.svg", "/favicon.ico", "/me.js", "/key-rotation.html"}

// uiConfig is what the admin page needs to know of the deployment, served
// as /config.json: nothing secret.
type uiConfig struct {
	// GitHubWebURL, without a trailing slash, for links to GitHub.com
	// pages (the GitHub App's settings).
	GitHubWebURL string `json:"githubWebUrl"`
}

// uiHandler serves the admin page. It only talks to the REST API, so its
// policy allows nothing but this origin.
func uiHandler(cfg uiConfig) http.Handler {
	sub, _ := fs.Sub(uiFiles, "ui")
	files := http.FileServer(http.FS(sub))
	config, _ := json.Marshal(cfg)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; form-action 'self' https: http:; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.NotFound(w, r)
			return
		}
		switch {
		case r.URL.Path == "/me":
			// A server user's own page (me.go).
			http.ServeFileFS(w, r, sub, "me.html")
		case r.URL.Path == "/config.json":
			h.Set("Content-Type", "application/json")
			h.Set("Cache-Control", "no-cache")
			w.Write(config)
		case slices.Contains(uiPaths, r.URL.Path):
			// Go's own MIME table has no .ico, and the images have no
			// system one.
			if r.URL.Path == "/favicon.ico" {
				h.Set("Content-Type", "image/x-icon")
			}
			files.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
