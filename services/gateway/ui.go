package gateway

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed ui/index.html ui/app.js ui/app.css
var uiFiles embed.FS

// uiHandler serves the admin page. It only talks to the REST API, so its
// policy allows nothing but this origin.
func uiHandler() http.Handler {
	sub, _ := fs.Sub(uiFiles, "ui")
	files := http.FileServer(http.FS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; form-action 'self' https: http:; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || (r.URL.Path != "/" && r.URL.Path != "/app.js" && r.URL.Path != "/app.css") {
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
}
