#!/usr/bin/env bash
# compare.sh measures Parley, ejabberd and Prosody on this machine with the
# same load generator (parley bench), the same certificate, accounts,
# SASL mechanism and scenarios, and prints one comparison table.
#
#   bench/compare.sh                 # N=15000 sessions, 2000 chat users
#   N=3000 bench/compare.sh          # smaller
#   SERVERS="parley" bench/compare.sh
#
# Environment (defaults in brackets):
#   N [15000]            idle sessions of the connect runs
#   CHAT_USERS [2000]    users online in the chat runs
#   CHAT_SECONDS [20]    sending time of each chat run
#   CHAT_RATE [1000]     fixed rate (msgs/s) of the latency run: p99 is
#                        taken there, below every server's ceiling
#   SERVERS ["parley ejabberd prosody"]
#   DOMAIN [bench.local] WORK [/tmp/parley-compare]
#   TLS_GROUPS [X25519]  key exchange groups the load offers (--tls-groups):
#                        the one ejabberd's and Prosody's OpenSSL 3.0 pick,
#                        so every server does the same handshake work;
#                        empty: Go's defaults (X25519MLKEM768 first, which
#                        only Parley accepts)
#   PARLEY_DURABILITY [fsync]  Parley's --durability for the runs
#   ARCHIVE ["off on"]   the message archive (XEP-0313) in the chat runs:
#                        "off" none of the servers archives (Parley with
#                        --archive-retention 0): the like-for-like durable
#                        delivery comparison; "on" every server archives
#                        every 1:1 message (Parley's default; ejabberd's
#                        mod_mam with default: always and Prosody's
#                        mod_mam with default_archive_policy = true, both
#                        in SQLite, as they advise); both: one row each
#   PARLEY_ARGS          more flags for parley serve
#   SETTLE [30s]         wait before each memory reading (see docs/benchmarks.md:
#                        Parley hands its post-login heap room back after a
#                        quiet 10 s interval; 10 s measured the burst)
#   PARLEY_BIN           measure this parley binary instead of building one
#   TABLE_ONLY=1         only print the table of the results in $WORK
#
# Each server runs pinned to core 0 (taskset -c 0), the load to core 1
# (taskset -c 1); each measurement starts a fresh server process and stops
# it by PID afterwards. ejabberd and Prosody come from Debian
# (apt-get install -y ejabberd prosody); their system services are stopped
# and disabled, and they run from the configuration files in bench/ on
# loopback ports of their own. Results: $WORK/results/*.json and the table
# on stdout (also $WORK/results/table.md).
set -euo pipefail

N=${N:-15000}
CHAT_USERS=${CHAT_USERS:-2000}
CHAT_SECONDS=${CHAT_SECONDS:-20}
CHAT_RATE=${CHAT_RATE:-1000}
SERVERS=${SERVERS:-"parley ejabberd prosody"}
DOMAIN=${DOMAIN:-bench.local}
WORK=${WORK:-/tmp/parley-compare}
PARLEY_DURABILITY=${PARLEY_DURABILITY:-fsync}
TLS_GROUPS=${TLS_GROUPS-X25519}
PARLEY_ARGS=${PARLEY_ARGS:-}
ARCHIVE=${ARCHIVE-off on}
# The connect runs (idle sessions, logins) run once per server, with the
# archive on if any chat run has it: Parley's default configuration.
case " $ARCHIVE " in *" on "*) CONNECT_ARCHIVE=on ;; *) CONNECT_ARCHIVE=off ;; esac
[ -n "${ARCHIVE// /}" ] || { echo "compare: ARCHIVE is empty: give on, off or both" >&2; exit 2; }
for a in $ARCHIVE; do
	case $a in on | off) ;; *) echo "compare: ARCHIVE must list on and/or off, not '$a'" >&2; exit 2 ;; esac
done
SETTLE=${SETTLE:-30s}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=$ROOT/bench
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
RESULTS=$WORK/results
PARLEY=$WORK/bin/parley

# Loopback ports of our own, one pair per server.
PARLEY_C2S=15222 PARLEY_TLS=15223 PARLEY_HTTP=15280
EJABBERD_C2S=16222 EJABBERD_TLS=16223
PROSODY_C2S=17222 PROSODY_TLS=17223
EJABBERD_NODE=parley-bench-ejabberd@localhost

log() { printf '%s compare: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (apt-get, and the servers run as their own system users)"
[ "$(nproc)" -ge 2 ] || die "needs 2 cores: server on core 0, load on core 1"

SERVER_PID=""    # the running server's main process, stopped by cleanup
EPMD_BEFORE=""   # epmd PIDs that ran before us are left alone

cleanup() {
	stop_server || true
	local p
	for p in $(pgrep -x epmd || true); do
		case " $EPMD_BEFORE " in
		*" $p "*) ;;
		*) kill "$p" 2>/dev/null || true ;;
		esac
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- install ------------------------------------------------------------
install_peers() {
	# Stopping an ejabberd service starts an epmd of its own (ejabberdctl
	# asks it for the node): note the one that ran before us, if any.
	EPMD_BEFORE=$(pgrep -x epmd | tr '\n' ' ' || true)
	# The SQLite drivers hold the peers' archives (ARCHIVE=on).
	local pkgs="ejabberd prosody erlang-p1-sqlite3 lua-dbi-sqlite3" p missing=""
	for p in $pkgs; do
		dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		log "installing$missing from Debian"
		DEBIAN_FRONTEND=noninteractive apt-get install -y $pkgs >/dev/null
	fi
	# They must not run as system services: stop and disable whatever the
	# package scripts may have started (a policy-rc.d may have prevented it).
	for svc in ejabberd prosody; do
		if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
			systemctl disable --now "$svc" >/dev/null 2>&1 || true
		fi
		service "$svc" stop >/dev/null 2>&1 || true
		update-rc.d "$svc" disable >/dev/null 2>&1 || true
	done
	if pgrep -u ejabberd beam.smp >/dev/null || pgrep -u prosody >/dev/null; then
		die "a system ejabberd or prosody is still running; stop it first"
	fi
}

# --- build, certificate, configs -----------------------------------------
prepare() {
	rm -rf "$WORK"
	mkdir -p "$WORK" "$RESULTS"
	mkdir -p "$(dirname "$PARLEY")"
	if [ -n "${PARLEY_BIN:-}" ]; then
		cp "$PARLEY_BIN" "$PARLEY"
		echo "given binary $PARLEY_BIN ($("$PARLEY" version))" >"$WORK/parley-version"
	else
		log "building parley"
		(cd "$ROOT" && go build -o "$PARLEY" ./cmd/parley)
		parley_version >"$WORK/parley-version"
	fi
	# One self-signed certificate for all three servers; the load verifies it.
	self_signed "$WORK" "$DOMAIN"
	cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/combined.pem"
	chmod 644 "$WORK/cert.pem" "$WORK/key.pem" "$WORK/combined.pem"
	chmod 755 "$WORK"

	mkdir -p "$WORK/ejabberd/logs" "$WORK/ejabberd/spool"
	# One config per archive mode; pick MODE ON OFF prints ON in mode on.
	local mode
	pick() { if [ "$1" = on ]; then printf '%s' "$2"; else printf '%s' "$3"; fi; }
	for mode in off on; do
		sed -e "s|@DOMAIN@|$DOMAIN|g" -e "s|@CERT_PEM@|$WORK/combined.pem|g" \
			-e "s|@C2S_PORT@|$EJABBERD_C2S|g" -e "s|@C2S_TLS_PORT@|$EJABBERD_TLS|g" \
			-e "s|@ARCHIVE@|$(pick $mode "mod_mam: {default: always, db_type: sql}" "# no archive")|" \
			-e "s|@ARCHIVE_SQL_TYPE@|$(pick $mode "sql_type: sqlite" "# no archive")|" \
			-e "s|@ARCHIVE_SQL_DATABASE@|$(pick $mode "sql_database: \"$WORK/ejabberd/spool/archive.db\"" "# no archive")|" \
			"$BENCH_DIR/ejabberd.yml.in" >"$WORK/ejabberd/ejabberd-archive-$mode.yml"
	done
	# ejabberdctl.cfg: enough Erlang ports (sockets) for N sessions.
	cat >"$WORK/ejabberd/ejabberdctl.cfg" <<-EOF
		ERL_MAX_PORTS=65536
		ERL_PROCESSES=1000000
		ERL_MAX_ETS_TABLES=10000
		ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"
	EOF
	cp /etc/ejabberd/inetrc "$WORK/ejabberd/inetrc"
	chown -R ejabberd:ejabberd "$WORK/ejabberd"

	mkdir -p "$WORK/prosody/data"
	for mode in off on; do
		sed -e "s|@DOMAIN@|$DOMAIN|g" -e "s|@CERT_PEM@|$WORK/cert.pem|g" -e "s|@KEY_PEM@|$WORK/key.pem|g" \
			-e "s|@C2S_PORT@|$PROSODY_C2S|g" -e "s|@C2S_TLS_PORT@|$PROSODY_TLS|g" -e "s|@DIR@|$WORK/prosody|g" \
			-e "s|@ARCHIVE@|$(pick $mode '"mam";' '-- no archive')|" \
			-e "s|@ARCHIVE_POLICY@|$(pick $mode true false)|" \
			-e "s|@ARCHIVE_STORAGE@|$(pick $mode 'storage = { archive = \"sql\" }; sql = { driver = \"SQLite3\", database = \"archive.sqlite\" }' '-- no archive')|" \
			"$BENCH_DIR/prosody.cfg.lua.in" >"$WORK/prosody/prosody-archive-$mode.cfg.lua"
	done
	chown -R prosody:prosody "$WORK/prosody"
}

# --- servers ---------------------------------------------------------------

# start_server SERVER [ARCHIVE]: ARCHIVE is on or off (default
# $CONNECT_ARCHIVE).
start_server() {
	local name=$1 archive=${2:-$CONNECT_ARCHIVE} parley_archive=""
	[ "$archive" = off ] && parley_archive="--archive-retention 0"
	case $name in
	parley)
		taskset -c 0 "$PARLEY" serve --domain "$DOMAIN" --data "$WORK/parley/data" \
			--c2s 127.0.0.1:$PARLEY_C2S --c2s-tls 127.0.0.1:$PARLEY_TLS --http 127.0.0.1:$PARLEY_HTTP \
			--tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" --starttls-required=false \
			--durability "$PARLEY_DURABILITY" --log-level warn $parley_archive $PARLEY_ARGS 2>>"$WORK/parley.log" &
		SERVER_PID=$!
		wait_port $PARLEY_C2S || die "parley did not start (see $WORK/parley.log)"
		;;
	ejabberd)
		# ejabberdctl runs ejabberd as its user; the measured process is
		# the Erlang VM (beam.smp) of our node.
		taskset -c 0 setpriv --reuid=ejabberd --regid=ejabberd --init-groups \
			env HOME=/var/lib/ejabberd ejabberdctl --config-dir "$WORK/ejabberd" \
			--config "$WORK/ejabberd/ejabberd-archive-$archive.yml" --ctl-config "$WORK/ejabberd/ejabberdctl.cfg" \
			--logs "$WORK/ejabberd/logs" --spool "$WORK/ejabberd/spool" --node "$EJABBERD_NODE" \
			foreground >>"$WORK/ejabberd.log" 2>&1 &
		wait_port $EJABBERD_C2S || die "ejabberd did not start (see $WORK/ejabberd.log and $WORK/ejabberd/logs)"
		SERVER_PID=$(pgrep -f "beam.smp.*$EJABBERD_NODE" | head -1)
		[ -n "$SERVER_PID" ] || die "cannot find ejabberd's beam.smp"
		;;
	prosody)
		taskset -c 0 setpriv --reuid=prosody --regid=prosody --init-groups \
			prosody --config "$WORK/prosody/prosody-archive-$archive.cfg.lua" -F >>"$WORK/prosody.log" 2>&1 &
		SERVER_PID=$!
		wait_port $PROSODY_C2S || die "prosody did not start (see $WORK/prosody.log and $WORK/prosody/prosody.log)"
		;;
	esac
	log "$name running, PID $SERVER_PID"
}

stop_server() {
	[ -n "$SERVER_PID" ] || return 0
	local pid=$SERVER_PID
	SERVER_PID=""
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 300); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	log "PID $pid did not stop in 30 s: killing it"
	kill -KILL "$pid" 2>/dev/null || true
}

addr_of() { # server mode → host:port
	case "$1-$2" in
	parley-direct) echo 127.0.0.1:$PARLEY_TLS ;;
	parley-*) echo 127.0.0.1:$PARLEY_C2S ;;
	ejabberd-direct) echo 127.0.0.1:$EJABBERD_TLS ;;
	ejabberd-*) echo 127.0.0.1:$EJABBERD_C2S ;;
	prosody-direct) echo 127.0.0.1:$PROSODY_TLS ;;
	prosody-*) echo 127.0.0.1:$PROSODY_C2S ;;
	esac
}

# bench SERVER TLSMODE OUT.json ARGS… runs the load on core 1.
bench() {
	local server=$1 mode=$2 out=$3
	shift 3
	taskset -c 1 "$PARLEY" bench --addr "$(addr_of "$server" "$mode")" --tls "$mode" \
		--domain "$DOMAIN" --ca "$WORK/cert.pem" --mechanism SCRAM-SHA-1 \
		--user-prefix bench --password bench-pw --scram-cache "$WORK/scram-keys-$server" \
		${TLS_GROUPS:+--tls-groups "$TLS_GROUPS"} --json "$@" >"$RESULTS/$out" 2>>"$WORK/bench.log" ||
		die "parley bench $* against $server failed (see $WORK/bench.log)"
}

# --- accounts ----------------------------------------------------------------
create_accounts() {
	local server=$1 count=$(( N > CHAT_USERS ? N : CHAT_USERS ))
	case $server in
	parley)
		# Offline import into the stopped server's store: the fastest way.
		local t0=$SECONDS
		"$PARLEY" bench --print-accounts -n "$count" --domain "$DOMAIN" --user-prefix bench --password bench-pw |
			"$PARLEY" user import --data "$WORK/parley/data" >&2
		log "parley: $count accounts imported in $((SECONDS - t0)) s"
		;;
	*)
		# In-band registration (XEP-0077), throttles off in the configs:
		# one registration is one connection, unlike ejabberdctl/prosodyctl
		# which start a VM or a Lua process per account.
		start_server "$server"
		bench "$server" plain "$server-register.json" register -n "$count" --concurrency 32
		stop_server
		log "$server: $(jq -r '.register | "\(.created) accounts registered in \(.seconds|floor) s (\(.per_second|floor)/s)"' "$RESULTS/$server-register.json")"
		;;
	esac
}

measure() {
	local server=$1
	create_accounts "$server"
	# Unmeasured warm-up: every account logs in once, so that the load
	# generator has the SCRAM keys of all of them (--scram-cache) and the
	# measured logins cost it no PBKDF2 (about 0.8 ms each): the server,
	# not the load's key derivation, then bounds the login rate.
	start_server "$server"
	log "$server: warm-up logins (SCRAM key cache)"
	bench "$server" plain "$server-warmup.json" connect -n "$N" --settle 0s
	stop_server
	for mode in plain starttls; do
		start_server "$server"
		log "$server: connect $N ($mode)"
		bench "$server" "$mode" "$server-connect-$mode.json" connect -n "$N" --pid "$SERVER_PID" --settle "$SETTLE"
		stop_server
	done
	local archive
	for archive in $ARCHIVE; do
		start_server "$server" "$archive"
		log "$server: chat, $CHAT_USERS users, max rate, archive $archive"
		bench "$server" starttls "$server-chat-max-archive-$archive.json" chat -n "$CHAT_USERS" --duration "${CHAT_SECONDS}s" --window 2000 --pid "$SERVER_PID"
		log "$server: chat, $CHAT_USERS users, $CHAT_RATE msgs/s, archive $archive"
		bench "$server" starttls "$server-chat-rate-archive-$archive.json" chat -n "$CHAT_USERS" --duration "${CHAT_SECONDS}s" --rate "$CHAT_RATE" --window 100000 --pid "$SERVER_PID"
		stop_server
	done
}

# parley_version names the commit built, and says when the working tree
# had uncommitted changes (the figures are then not exactly that commit's).
parley_version() {
	local rev dirty=""
	rev=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null) || { echo "?"; return; }
	[ -n "$(cd "$ROOT" && git status --porcelain --untracked-files=no 2>/dev/null)" ] && dirty=" + uncommitted changes"
	echo "$rev$dirty"
}

table() {
	# Server CPU time per login and per message comes beside the rates: on
	# a shared machine a server pinned to core 0 may get a fraction of it,
	# which lowers its rates but hardly its CPU time per operation.
	echo "| server | archive | bytes/session plain | bytes/session TLS | logins/s plain | logins/s TLS | server CPU/login plain | server CPU/login TLS | msgs/s (max) | server CPU/msg at max | p99 at max | p99 at $CHAT_RATE msgs/s | failures |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	local s a
	for s in $SERVERS; do
		local r=$RESULTS/$s
		for a in $ARCHIVE; do
			[ -f "$r-chat-max-archive-$a.json" ] || continue
			jq -rn --arg s "$s" --arg a "$a" \
				--slurpfile p "$r-connect-plain.json" --slurpfile t "$r-connect-starttls.json" \
				--slurpfile m "$r-chat-max-archive-$a.json" --slurpfile c "$r-chat-rate-archive-$a.json" '
				def kb: (. / 1024 * 10 | round / 10 | tostring) + " KiB";
				def ms: (. * 100 | round / 100 | tostring) + " ms";
				def us: (. | round | tostring) + " µs";
				def perlogin: (.server_cpu_seconds * 1e6 / ([.login.ok, 1] | max)) | us;
				"| \($s) | \($a) | \($p[0].memory.bytes_per_session | kb) | \($t[0].memory.bytes_per_session | kb)"
				+ " | \($p[0].login.per_second | floor) | \($t[0].login.per_second | floor)"
				+ " | \($p[0] | perlogin) | \($t[0] | perlogin)"
				+ " | \($m[0].chat.delivered_per_second | floor) | \($m[0].chat.server_cpu_per_message_us | us)"
				+ " | \($m[0].chat.latency.p99_ms | ms) | \($c[0].chat.latency.p99_ms | ms)"
				+ " | \($p[0].login.failed + $t[0].login.failed + $m[0].chat.lost + $c[0].chat.lost) |"'
		done
	done
}

if [ "${TABLE_ONLY:-}" = 1 ]; then
	# Re-print the table of the last run's results.
	table
	exit 0
fi
install_peers
prepare
log "N=$N CHAT_USERS=$CHAT_USERS CHAT_SECONDS=$CHAT_SECONDS CHAT_RATE=$CHAT_RATE ARCHIVE=\"$ARCHIVE\" TLS_GROUPS=${TLS_GROUPS:-default}; nproc $(nproc); load $(cut -d' ' -f1-3 /proc/loadavg)"
for s in $SERVERS; do
	measure "$s"
done
{
	echo "N=$N idle sessions; chat: $CHAT_USERS users, ${CHAT_SECONDS}s per run, SCRAM-SHA-1, stream management off, STARTTLS for chat, archive runs: $ARCHIVE, TLS groups offered: ${TLS_GROUPS:-Go default}"
	echo "$(date -u +%FT%TZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), parley $(cat "$WORK/parley-version" 2>/dev/null || echo '?'), $(dpkg-query -W -f '${Package} ${Version}, ' ejabberd prosody 2>/dev/null)"
	echo
	table
} | tee "$RESULTS/table.md"
