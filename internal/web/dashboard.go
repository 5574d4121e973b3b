package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// The dashboard is plain HTML, CSS and JavaScript with no build step; the
// files under dashboard/ are compiled into the binary.
//
//go:embed dashboard
var dashboardFiles embed.FS

// DashboardCSP is the Content-Security-Policy of every dashboard response:
// scripts, styles, images and fetches come only from this origin, with no
// inline code, no plugins, no <base> tricks and no framing.
const DashboardCSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

// dashboardPrefix is where the dashboard lives on the HTTP listener.
const dashboardPrefix = "/admin/"

// dashboardTypes are the content types of the file kinds the dashboard
// ships; a file of another kind is not served.
var dashboardTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".json": "application/json; charset=utf-8",
}

// dashboardAsset is one file ready to serve.
type dashboardAsset struct {
	body        []byte
	contentType string
	etag        string
	version     string // short content hash, the ?v= of the asset's URL
}

// dashboardSite is the dashboard's files keyed by their name below
// /admin/ ("" is index.html).
type dashboardSite map[string]*dashboardAsset

var loadDashboard = sync.OnceValues(func() (dashboardSite, error) {
	return buildDashboardSite(dashboardFiles, "dashboard")
})

// buildDashboardSite reads every file under root and prepares it. The
// references of index.html to the other files (src="app.js",
// href="app.css", …) get a ?v=<content hash> suffix, so a browser may keep
// the assets for long (the URL changes whenever a file does) while
// index.html itself is revalidated on every load.
func buildDashboardSite(fsys fs.FS, root string) (dashboardSite, error) {
	site := dashboardSite{}
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := dashboardTypes[path.Ext(p)]
		if !ok {
			return nil
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		version := base64.RawURLEncoding.EncodeToString(sum[:9])
		site[strings.TrimPrefix(p, root+"/")] = &dashboardAsset{body: body, contentType: ct, version: version}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if index, ok := site["index.html"]; ok {
		body := index.body
		for name, a := range site {
			if name == "index.html" {
				continue
			}
			for _, attr := range []string{`src="`, `href="`} {
				body = bytes.ReplaceAll(body, []byte(attr+name+`"`), []byte(attr+name+"?v="+a.version+`"`))
			}
		}
		index.body = body
		sum := sha256.Sum256(body)
		index.version = base64.RawURLEncoding.EncodeToString(sum[:9])
	}
	for _, a := range site {
		a.etag = `"` + a.version + `"`
	}
	return site, nil
}

// Dashboard serves the admin dashboard: the files embedded from
// dashboard/ under /admin/, with /admin/ itself being index.html. It
// answers GET and HEAD only, 404 for any name it does not have (there is
// no directory listing and no fallback page), and sends with every answer
// the DashboardCSP policy. index.html is sent with Cache-Control: no-cache
// (the browser revalidates it with its ETag each time); the other files
// are immutable for a year when asked for with their current ?v= content
// hash (as index.html links them) and no-cache otherwise.
//
// The page talks to the admin API (/api/) with the bearer token the
// person signs in with; the token is kept in the tab's sessionStorage.
func Dashboard() http.Handler {
	site, err := loadDashboard()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", DashboardCSP)
		h.Set("X-Frame-Options", "DENY")
		if err != nil {
			// Only a broken build gets here: the files are embedded.
			http.Error(w, "dashboard unavailable: "+err.Error(), http.StatusInternalServerError)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, dashboardPrefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if name == "" {
			name = "index.html"
		}
		a, ok := site[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.Set("Content-Type", a.contentType)
		h.Set("ETag", a.etag)
		switch {
		case name == "index.html":
			h.Set("Cache-Control", "no-cache")
		case r.URL.Query().Get("v") == a.version:
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		default:
			h.Set("Cache-Control", "no-cache")
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
	})
}
