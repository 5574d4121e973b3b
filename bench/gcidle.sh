#!/usr/bin/env bash
# gcidle.sh measures what idle sessions do to the server's garbage collector:
# Parley pinned to core 0 holds IDLE idle STARTTLS sessions while 2,000 other
# users chat at 1,000 msgs/s for 30 s (the load on core 1), and the server's
# GC figures are read from /metrics before and after the chat.
#
#   bench/gcidle.sh 0        # no idle sessions
#   bench/gcidle.sh 13000    # 13,000 (stays under the 20,000 open files)
#
# Environment: PARLEY_BIN (measure this binary instead of building one),
# WORK [/tmp/parley-gcidle]. Prints the mean stop-the-world pause per
# collection during the chat, the number of collections, the GOGC and heap
# goal in effect at the end, and the chat's p99 (docs/benchmarks.md, run 11).
set -euo pipefail
IDLE=${1:?usage: gcidle.sh IDLE}
WORK=${WORK:-/tmp/parley-gcidle}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
BIN=$WORK/parley
C2S=18222 C2S_TLS=18223 HTTP=18280
mkdir -p "$WORK"
if [ -n "${PARLEY_BIN:-}" ]; then cp "$PARLEY_BIN" "$BIN"; else (cd "$ROOT" && go build -o "$BIN" ./cmd/parley); fi
[ -f "$WORK/cert.pem" ] || self_signed "$WORK" bench.local
if [ ! -d "$WORK/base" ]; then # 2,000 chat users and up to 17,000 idle ones, imported once
	{ "$BIN" bench --print-accounts -n 2000 --domain bench.local --user-prefix bench --password bench-pw
	  "$BIN" bench --print-accounts -n 17000 --domain bench.local --user-prefix idle --password bench-pw; } |
		"$BIN" user import --data "$WORK/base" >/dev/null
fi
rm -rf "$WORK/run"; mkdir -p "$WORK/run"; cp -r "$WORK/base" "$WORK/run/data"
taskset -c 0 "$BIN" serve --domain bench.local --data "$WORK/run/data" --c2s 127.0.0.1:$C2S --c2s-tls 127.0.0.1:$C2S_TLS --http 127.0.0.1:$HTTP \
	--tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" --starttls-required=false --log-level warn \
	2>"$WORK/run/server.log" </dev/null &
server=$!
idlepid=""
trap 'kill $server $idlepid 2>/dev/null; wait || true' EXIT
wait_port $C2S || { echo "parley did not start: $WORK/run/server.log" >&2; exit 1; }
load=(taskset -c 1 "$BIN" bench --addr 127.0.0.1:$C2S --tls starttls --domain bench.local --ca "$WORK/cert.pem"
	--mechanism SCRAM-SHA-1 --password bench-pw --json)
if [ "$IDLE" -gt 0 ]; then
	# Not in a function or subshell: $! must be the load's PID (taskset execs it).
	"${load[@]}" --user-prefix idle --scram-cache "$WORK/keys-idle" connect -n "$IDLE" --hold 10m >"$WORK/run/idle.json" 2>"$WORK/run/idle.log" &
	idlepid=$!
	until grep -q holding "$WORK/run/idle.log" 2>/dev/null; do
		kill -0 $idlepid 2>/dev/null || { echo "idle logins failed: $WORK/run/idle.log" >&2; exit 1; }
		sleep 1
	done
	sleep 15 # the login burst's heap room goes back first (ReturnMemoryWhenIdle)
fi
metrics() { curl -s http://127.0.0.1:$HTTP/metrics | grep -E '^(go_gc_duration_seconds_(sum|count)|go_gc_gogc_percent|go_memstats_next_gc_bytes) '; }
metrics >"$WORK/run/before"
"${load[@]}" --user-prefix bench --scram-cache "$WORK/keys" chat -n 2000 --rate 1000 --duration 30s --window 100000 \
	>"$WORK/run/chat.json" 2>"$WORK/run/chat.log"
metrics >"$WORK/run/after"
val() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
n=$(( $(val go_gc_duration_seconds_count "$WORK/run/after") - $(val go_gc_duration_seconds_count "$WORK/run/before") ))
awk -v n="$n" -v idle="$IDLE" -v s0="$(val go_gc_duration_seconds_sum "$WORK/run/before")" \
	-v s1="$(val go_gc_duration_seconds_sum "$WORK/run/after")" -v gogc="$(val go_gc_gogc_percent "$WORK/run/after")" \
	-v goal="$(val go_memstats_next_gc_bytes "$WORK/run/after")" -v p99="$(jq -r .chat.latency.p99_ms "$WORK/run/chat.json")" \
	'BEGIN { printf "idle %d: %d collections in the chat, mean pause %.2f ms, GOGC %d, heap goal %.1f MB, chat p99 %s ms\n", idle, n, (n ? (s1 - s0) / n * 1000 : 0), gogc, goal / 1e6, p99 }'
