package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

// dashGet serves one request to h and returns the recorder.
func dashGet(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// dashSite returns the embedded site, failing the test if it did not load.
func dashSite(t *testing.T) dashboardSite {
	t.Helper()
	site, err := loadDashboard()
	if err != nil {
		t.Fatalf("embedded dashboard: %v", err)
	}
	return site
}

func TestDashboardServesFiles(t *testing.T) {
	h := Dashboard()
	site := dashSite(t)
	cases := []struct {
		path, contentType string
	}{
		{"/admin/", "text/html; charset=utf-8"},
		{"/admin/index.html", "text/html; charset=utf-8"},
		{"/admin/app.js", "text/javascript; charset=utf-8"},
		{"/admin/app.css", "text/css; charset=utf-8"},
		{"/admin/favicon.svg", "image/svg+xml"},
	}
	for _, c := range cases {
		rec := dashGet(t, h, http.MethodGet, c.path, nil)
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", c.path, rec.Code)
			continue
		}
		if got := rec.Header().Get("Content-Type"); got != c.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", c.path, got, c.contentType)
		}
		if got := rec.Header().Get("Content-Security-Policy"); got != DashboardCSP {
			t.Errorf("GET %s: Content-Security-Policy %q, want %q", c.path, got, DashboardCSP)
		}
		if got := rec.Header().Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("GET %s: X-Frame-Options %q, want DENY", c.path, got)
		}
		name := strings.TrimPrefix(c.path, "/admin/")
		if name == "" {
			name = "index.html"
		}
		if got, want := rec.Body.String(), string(site[name].body); got != want {
			t.Errorf("GET %s: body differs from the embedded %s", c.path, name)
		}
		if rec.Header().Get("ETag") == "" {
			t.Errorf("GET %s: no ETag", c.path)
		}
	}
	if !strings.HasPrefix(DashboardCSP, "default-src 'self'") {
		t.Errorf("DashboardCSP = %q, want it to start with default-src 'self'", DashboardCSP)
	}
}

func TestDashboardCaching(t *testing.T) {
	h := Dashboard()
	site := dashSite(t)

	rec := dashGet(t, h, http.MethodGet, "/admin/", nil)
	if got := rec.Header().Get("Cache-Control"); got != "no-cache" {
		t.Errorf("index.html: Cache-Control %q, want no-cache", got)
	}
	index := rec.Body.String()

	// index.html links the other files with their content hash, and those
	// URLs may be kept for long; the same file without (or with another)
	// hash must be revalidated.
	for _, name := range []string{"app.js", "app.css", "favicon.svg"} {
		v := site[name].version
		if !strings.Contains(index, name+"?v="+v+`"`) {
			t.Errorf("index.html does not link %s?v=%s", name, v)
		}
		rec := dashGet(t, h, http.MethodGet, "/admin/"+name+"?v="+v, nil)
		if got := rec.Header().Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
			t.Errorf("%s?v=<current>: Cache-Control %q, want immutable", name, got)
		}
		for _, q := range []string{"", "?v=old"} {
			rec := dashGet(t, h, http.MethodGet, "/admin/"+name+q, nil)
			if got := rec.Header().Get("Cache-Control"); got != "no-cache" {
				t.Errorf("%s%s: Cache-Control %q, want no-cache", name, q, got)
			}
		}
	}

	// Revalidation with the ETag answers 304 without a body.
	etag := rec.Header().Get("ETag")
	rec = dashGet(t, h, http.MethodGet, "/admin/", map[string]string{"If-None-Match": etag})
	if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Errorf("If-None-Match with the current ETag: %d with %d bytes, want 304 and none", rec.Code, rec.Body.Len())
	}
	rec = dashGet(t, h, http.MethodGet, "/admin/", map[string]string{"If-None-Match": `"something-else"`})
	if rec.Code != http.StatusOK {
		t.Errorf("If-None-Match with another ETag: %d, want 200", rec.Code)
	}
}

func TestDashboardNotFoundAndMethods(t *testing.T) {
	h := Dashboard()
	for _, p := range []string{
		"/admin/nope.html",
		"/admin/app.js/",
		"/admin/dashboard/app.js",
		"/admin/../web.go",
		"/admin/%2e%2e/web.go",
		"/admin/index.html/x",
		"/admin/sub/",
		"/elsewhere/",
	} {
		rec := dashGet(t, h, http.MethodGet, p, nil)
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, rec.Code)
		}
		if got := rec.Header().Get("Content-Security-Policy"); got != DashboardCSP {
			t.Errorf("GET %s: 404 without the CSP header", p)
		}
	}

	rec := dashGet(t, h, http.MethodHead, "/admin/app.js", nil)
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") == "" {
		t.Errorf("HEAD /admin/app.js: %d, %d body bytes, Content-Length %q; want 200, none and a length",
			rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"))
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		rec := dashGet(t, h, m, "/admin/", nil)
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /admin/: %d Allow %q, want 405 with Allow: GET, HEAD", m, rec.Code, rec.Header().Get("Allow"))
		}
	}
}

// Through the whole HTTP surface: /admin redirects, /admin/ carries the
// common security headers too, and no dashboard means 404.
func TestDashboardMounted(t *testing.T) {
	h := New(Config{Dashboard: Dashboard()})
	rec := dashGet(t, h, http.MethodGet, "/admin", nil)
	if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/admin/" {
		t.Errorf("GET /admin: %d to %q, want 301 to /admin/", rec.Code, rec.Header().Get("Location"))
	}
	rec = dashGet(t, h, http.MethodGet, "/admin/", nil)
	if rec.Code != http.StatusOK || rec.Header().Get("X-Content-Type-Options") != "nosniff" ||
		rec.Header().Get("Content-Security-Policy") != DashboardCSP {
		t.Errorf("GET /admin/ through New: %d, headers %v", rec.Code, rec.Header())
	}
	rec = dashGet(t, h, http.MethodGet, "/admin/missing.js", nil)
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /admin/missing.js through New: %d, want 404", rec.Code)
	}

	rec = dashGet(t, New(Config{}), http.MethodGet, "/admin/", nil)
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /admin/ without a dashboard: %d, want 404", rec.Code)
	}
}

// Every file shipped is served, and every local file the page refers to
// exists: a typo in index.html or a file of an unknown kind would
// otherwise show only in a browser.
func TestDashboardFilesComplete(t *testing.T) {
	site := dashSite(t)
	err := fs.WalkDir(dashboardFiles, "dashboard", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if _, ok := site[strings.TrimPrefix(p, "dashboard/")]; !ok {
			t.Errorf("%s is embedded but not served (unknown file type?)", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h := Dashboard()
	index := string(site["index.html"].body)
	refs := regexp.MustCompile(`(?:src|href)="([^"#:]+)"`).FindAllStringSubmatch(index, -1)
	if len(refs) < 3 {
		t.Fatalf("index.html refers to %d local files, want the script, the style sheet and the icon", len(refs))
	}
	for _, m := range refs {
		rec := dashGet(t, h, http.MethodGet, "/admin/"+m[1], nil)
		if rec.Code != http.StatusOK {
			t.Errorf("index.html refers to %s, which answers %d", m[1], rec.Code)
		}
	}
}

// The page must work under the strict CSP: no inline script or style, no
// event handler attributes, no eval; and it builds its DOM without
// innerHTML, so API data (user names, JIDs) cannot inject markup.
func TestDashboardCSPClean(t *testing.T) {
	site := dashSite(t)
	index := string(site["index.html"].body)
	scripts := regexp.MustCompile(`(?is)<script([^>]*)>(.*?)</script>`).FindAllStringSubmatch(index, -1)
	if len(scripts) == 0 {
		t.Error("index.html loads no script")
	}
	for _, m := range scripts {
		if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
			t.Errorf("index.html has an inline script: %q", m[0])
		}
	}
	for _, re := range []string{`<style`, `\sstyle=`, `\son[a-z]+=`, `javascript:`} {
		if m := regexp.MustCompile(`(?i)` + re).FindString(index); m != "" {
			t.Errorf("index.html has %q, which the CSP forbids", m)
		}
	}
	js := string(site["app.js"].body)
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function", "document.write", "setAttribute('style'"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}

func TestBuildDashboardSite(t *testing.T) {
	fsys := fstest.MapFS{
		"d/index.html":  {Data: []byte(`<link href="a.css"><script src="a.js"></script><a href="a.js.map">x</a><img src="sub/i.png">`)},
		"d/a.css":       {Data: []byte("body{}")},
		"d/a.js":        {Data: []byte("1")},
		"d/sub/i.png":   {Data: []byte("png")},
		"d/README.md":   {Data: []byte("not served")},
		"d/a.js.map":    {Data: []byte("{}")},
		"d/empty/.keep": {Data: nil},
	}
	site, err := buildDashboardSite(fsys, "d")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"README.md", "a.js.map", "empty/.keep"} {
		if _, ok := site[name]; ok {
			t.Errorf("%s is served; only known file types should be", name)
		}
	}
	index := string(site["index.html"].body)
	for _, name := range []string{"a.css", "a.js", "sub/i.png"} {
		want := name + "?v=" + site[name].version + `"`
		if !strings.Contains(index, want) {
			t.Errorf("index.html %q does not link %s", index, want)
		}
	}
	if !strings.Contains(index, `href="a.js.map"`) {
		t.Errorf("index.html %q: a reference to a file that is not served was changed", index)
	}
	if site["a.js"].version == site["a.css"].version || site["a.js"].etag != `"`+site["a.js"].version+`"` {
		t.Errorf("versions and ETags are not per content: %+v %+v", site["a.js"], site["a.css"])
	}
	h := dashSitePaths(site)
	if !h["sub/i.png"] || h["d/a.js"] {
		t.Errorf("site names %v, want them relative to the root", h)
	}
}

func dashSitePaths(site dashboardSite) map[string]bool {
	m := map[string]bool{}
	for k := range site {
		m[k] = true
	}
	return m
}
