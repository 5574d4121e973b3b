#!/usr/bin/env bash
# Runs every check and test of Parley. It installs what the tests need first
# (Debian packages, Go tools), so it passes on a fresh Debian machine with Go.
# Usage: ./scripts/test.sh            (FUZZTIME=100000x by default per fuzz target:
#                                      executions, not a duration; see below)
set -euo pipefail
cd "$(dirname "$0")/.."

# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# report its own deadline as a failure ("context deadline exceeded", no
# crasher; golang/go#75804, fixed in Go 1.27), which failed FuzzNickname and
# FuzzDecoder in CI. 100,000 runs take 1-10 s per target here.
FUZZTIME="${FUZZTIME:-100000x}"
export PATH="$PATH:$(go env GOPATH)/bin"

step() { printf '\n==> %s\n' "$*"; }

step "installing test dependencies"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
pkgs=""
/usr/bin/python3 -c 'import slixmpp' 2>/dev/null || pkgs="$pkgs python3-slixmpp"
[ -x /usr/bin/chromium ] || pkgs="$pkgs chromium"
if [ -n "$pkgs" ]; then
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $pkgs >/dev/null
fi
/usr/bin/python3 -c 'import slixmpp; print("slixmpp", slixmpp.__version__)'
# Node comes with the machine image (Debian's own is too old for
# playwright-core); the npm packages are pinned by their lock files.
node --version
for d in test/browser test/e2e/js; do
	if [ -f "$d/package-lock.json" ]; then
		(cd "$d" && npm ci --no-audit --no-fund --loglevel=error)
	fi
done
if ! command -v staticcheck >/dev/null 2>&1; then
	go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet ./...

step "staticcheck"
staticcheck ./...

step "go test (unit, end-to-end with slixmpp)"
go test -race -count=1 -timeout 20m ./...

step "density guard (heap+stack per idle session; without the race detector, which changes allocation sizes)"
go test -count=1 -timeout 10m -v ./test/density/ | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|per (idle )?session'

step "fuzzing each target for $FUZZTIME"
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "-- $pkg $target"
		# Minimizing a newly interesting input may take up to 60 s by
		# default (both FuzzNickname workers once sat minimizing a
		# 768-byte input with 0 execs/s); 100 runs per attempt keep it
		# short.
		go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" -fuzzminimizetime=100x "$pkg"
	done
done

step "all checks passed (browser screenshots in test-output/)"
