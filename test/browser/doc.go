// Package browser tests Parley's admin dashboard in a real browser: the
// test (browser_test.go) builds and starts the real server, and
// dashboard.mjs drives Debian's chromium through the dashboard with
// playwright-core while the test signs a real XMPP client in and out.
//
// # Running
//
//	go test -count=1 ./test/browser -v
//
// Requirements: /usr/bin/chromium (apt-get install -y chromium; set
// CHROMIUM to use another binary), node and npm on PATH. The test runs
// `npm ci` in test/browser when node_modules is missing; it never
// downloads a browser (no `npx playwright install`). Without chromium or
// node the test is skipped, unless CI=true, in which case it fails.
//
// Screenshots go to <repo>/test-output/ (git-ignored): dashboard.png (the
// overview with a client signed in), dashboard-users.png,
// dashboard-sessions.png and dashboard-narrow.png; dashboard-failure.png
// when a step fails.
package browser
