#!/usr/bin/env bash
# Real components for the e2e tests, on loopback only:
#   FerretDB v1.24.0 (patched, SQLite backend)  ->  OpenHIM core 4.0.5 (npm, its repository's lock)  and  a FHIR R4 server (medplum fhir-router).
#
#   bash .ci/stack.sh install   # build/install everything (cached; a second run takes seconds)
#   bash .ci/stack.sh start     # install if needed, start all three, wait until ready, print the env to export
#   bash .ci/stack.sh env       # print the env of the running stack again
#   bash .ci/stack.sh status    # show which processes run
#   bash .ci/stack.sh stop      # stop everything this script started (by PID)
#
# Use it as:  eval "$(bash .ci/stack.sh start)"   (everything but the export line goes to stderr)
#
# Settings (environment):
#   STACK_CACHE   build cache (FerretDB binary, node_modules); default $HOME/.cache/openhim-mediator-go-ci
#   STACK_WORK    run state (data, logs, PIDs); default .ci/work
#   STACK_PORT_FERRETDB (27217) STACK_PORT_API (18080) STACK_PORT_ROUTER_HTTP (15001) STACK_PORT_ROUTER_HTTPS (15000)
#   STACK_PORT_FHIR (18103) STACK_PORT_RERUN (17786) STACK_PORT_TCP_RECEIVER (17787) STACK_PORT_POLLING (17788)
#   STACK_WAIT_SECONDS  bounded wait for each component to become ready (default 90)
set -euo pipefail

CI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${STACK_CACHE:-${HOME:-/root}/.cache/openhim-mediator-go-ci}
WORK=${STACK_WORK:-$CI_DIR/work}
LOGS=$WORK/logs
WAIT_SECONDS=${STACK_WAIT_SECONDS:-90}

FERRETDB_VERSION=v1.24.0
PORT_FERRETDB=${STACK_PORT_FERRETDB:-27217}
PORT_API=${STACK_PORT_API:-18080}
PORT_ROUTER_HTTP=${STACK_PORT_ROUTER_HTTP:-15001}
PORT_ROUTER_HTTPS=${STACK_PORT_ROUTER_HTTPS:-15000}
PORT_RERUN=${STACK_PORT_RERUN:-17786}
PORT_TCP_RECEIVER=${STACK_PORT_TCP_RECEIVER:-17787}
PORT_POLLING=${STACK_PORT_POLLING:-17788}
PORT_FHIR=${STACK_PORT_FHIR:-18103}
OPENHIM_USER=root@openhim.org
OPENHIM_PASS=openhim-password # created by core 4.0.5 on its first start with an empty database

log() { printf '[stack] %s\n' "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

# stamp_of FILE... prints a content hash of the given files (used as cache keys).
stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# ---------------------------------------------------------------------------------------------------------------
# install

install_ferretdb() {
	local want have src dir
	want=$(printf '%s\n' "$FERRETDB_VERSION" | cat - "$CI_DIR/openhim/ferretdb-v1.24.0.patch" | sha256sum | cut -d' ' -f1)
	have=$(cat "$CACHE/bin/ferretdb.stamp" 2>/dev/null || true)
	if [[ -x $CACHE/bin/ferretdb && $want == "$have" ]]; then
		log "ferretdb $FERRETDB_VERSION: cached ($CACHE/bin/ferretdb)"
		return
	fi
	log "ferretdb $FERRETDB_VERSION: building (about a minute cold)"
	mkdir -p "$CACHE/bin" "$CACHE/src"
	# `go install ...@v1.24.0` fails here (the module proxy refuses FerretDB's version list), and building it as a
	# dependency panics at start (version.txt); so: download the exact module, write version.txt, patch, build.
	# A private GOCACHE: a shared build cache was seen returning missing-file errors during this build.
	export GOCACHE=$CACHE/gocache GOFLAGS=-buildvcs=false GOTOOLCHAIN=local GOWORK=off
	local blog=$CACHE/ferretdb-build.log
	: >"$blog"
	dir=$(cd "$CACHE" && go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" 2>>"$blog" |
		sed -n 's/^[[:space:]]*"Dir":[[:space:]]*"\(.*\)",\{0,1\}$/\1/p')
	if [[ -z $dir || ! -d $dir ]]; then
		tail -n 30 "$blog" >&2
		die "go mod download github.com/FerretDB/FerretDB@$FERRETDB_VERSION gave no directory"
	fi
	src=$CACHE/src/ferretdb
	rm -rf "$src"
	cp -r "$dir" "$src"
	chmod -R u+w "$src"
	# without version.txt the binary panics at start ("Invalid build/version/version.txt file content")
	echo "$FERRETDB_VERSION" >"$src/build/version/version.txt"
	# the patch: OP_QUERY -> OP_MSG fallback so that openhim-core 4.0.5's mongodb-core 2.x driver works, and
	# update/findAndModify serialised (FerretDB reads and writes back in separate calls: concurrent updates of one
	# document lost one of them, e.g. a transaction's response)
	# (GIT_CEILING_DIRECTORIES: apply to this folder even when the cache lies inside a git work tree)
	(cd "$src" && GIT_CEILING_DIRECTORIES=$CACHE/src git apply -p1 --whitespace=nowarn \
		"$CI_DIR/openhim/ferretdb-v1.24.0.patch") ||
		die "patching FerretDB failed"
	if ! (cd "$src" && go build -trimpath -o "$CACHE/bin/ferretdb.new" ./cmd/ferretdb) >>"$blog" 2>&1; then
		tail -n 30 "$blog" >&2
		die "building FerretDB failed (log: $blog)"
	fi
	mv "$CACHE/bin/ferretdb.new" "$CACHE/bin/ferretdb"
	echo "$want" >"$CACHE/bin/ferretdb.stamp"
	# no `| head -1` here: under pipefail, head closing the pipe early makes the writer die of SIGPIPE (exit 141)
	local v
	v=$("$CACHE/bin/ferretdb" --version 2>&1) || die "the FerretDB binary just built does not run: $v"
	log "${v%%$'\n'*}"
}

# npm_ci NAME SRC_DIR: npm ci of SRC_DIR's package.json + package-lock.json into $CACHE/NAME (cached by lockfile).
npm_ci() {
	local name=$1 srcdir=$2 dest=$CACHE/$1 want have
	want=$(stamp_of "$srcdir/package.json" "$srcdir/package-lock.json")
	have=$(cat "$dest/.stamp" 2>/dev/null || true)
	if [[ -d $dest/node_modules && $want == "$have" ]]; then
		log "$name: cached ($dest)"
		return
	fi
	log "$name: npm ci"
	rm -rf "$dest"
	mkdir -p "$dest"
	cp "$srcdir/package.json" "$srcdir/package-lock.json" "$dest/"
	(cd "$dest" && npm ci --no-audit --no-fund --omit=dev --loglevel=error >&2) || die "npm ci for $name failed"
	echo "$want" >"$dest/.stamp"
}

install_openhim() {
	npm_ci openhim "$CI_DIR/openhim"
	local nm=$CACHE/openhim/node_modules
	# openhim-core requires 'ssl-root-cas/latest', which downloads Mozilla's CA list at start-up (no network here).
	# Pre-seeding the file it would write stops the attempt.
	if [[ ! -f $nm/ssl-root-cas/ssl-root-cas-latest.js ]]; then
		cp "$nm/ssl-root-cas/ssl-root-cas.js" "$nm/ssl-root-cas/ssl-root-cas-latest.js"
	fi
}

install_fhir() {
	npm_ci fhir-server "$CI_DIR/fhir-server"
}

cmd_install() {
	command -v go >/dev/null || die "go not found"
	command -v node >/dev/null || die "node not found"
	command -v npm >/dev/null || die "npm not found"
	local t0=$SECONDS
	install_ferretdb
	log "ferretdb: $((SECONDS - t0))s"
	t0=$SECONDS
	install_openhim
	log "openhim: $((SECONDS - t0))s"
	t0=$SECONDS
	install_fhir
	log "fhir-server: $((SECONDS - t0))s"
}

# ---------------------------------------------------------------------------------------------------------------
# start / stop

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# http_ok URL: true when GET URL answers 2xx (TLS verification off: core's default certificate).
http_ok() {
	NODE_TLS_REJECT_UNAUTHORIZED=0 node -e '
		const c = new AbortController(); setTimeout(() => c.abort(), 3000);
		fetch(process.argv[1], {signal: c.signal}).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1));
	' "$1" 2>/dev/null
}

alive() { [[ -f $WORK/$1.pid ]] && kill -0 "$(cat "$WORK/$1.pid")" 2>/dev/null; }

show_log() {
	local f=$LOGS/$1.log
	[[ -f $f ]] || return 0
	log "---- last 40 lines of $f ----"
	tail -n 40 "$f" >&2
	log "---- end of $f ----"
}

# wait_for NAME DESCRIPTION CHECK...: polls CHECK until it succeeds, the process dies, or WAIT_SECONDS pass.
wait_for() {
	local name=$1 what=$2
	shift 2
	local deadline=$((SECONDS + WAIT_SECONDS))
	until "$@"; do
		if ! alive "$name"; then
			show_log "$name"
			die "$name exited before it was ready ($what)"
		fi
		if ((SECONDS >= deadline)); then
			show_log "$name"
			die "$name not ready after ${WAIT_SECONDS}s ($what)"
		fi
		sleep 0.2
	done
}

check_port_free() {
	if port_open "$1"; then
		die "port 127.0.0.1:$1 ($2) is already in use; stop what uses it or set STACK_PORT_* (see .ci/README.md)"
	fi
}

start_ferretdb() {
	rm -rf "$WORK/ferretdb"
	mkdir -p "$WORK/ferretdb/data" "$WORK/ferretdb/state"
	"$CACHE/bin/ferretdb" --handler=sqlite --sqlite-url="file:$WORK/ferretdb/data/" --state-dir="$WORK/ferretdb/state" \
		--listen-addr="127.0.0.1:$PORT_FERRETDB" --debug-addr=- --telemetry=disable --log-level=warn \
		>"$LOGS/ferretdb.log" 2>&1 </dev/null &
	echo $! >"$WORK/ferretdb.pid"
	wait_for ferretdb "TCP 127.0.0.1:$PORT_FERRETDB" port_open "$PORT_FERRETDB"
	log "ferretdb ready on 127.0.0.1:$PORT_FERRETDB (pid $(cat "$WORK/ferretdb.pid"))"
}

openhim_started() {
	grep -q "OpenHIM server started" "$LOGS/openhim.log" 2>/dev/null &&
		http_ok "https://127.0.0.1:$PORT_API/heartbeat" && port_open "$PORT_ROUTER_HTTP"
}

start_openhim() {
	# a fresh database per start: names (URNs, channels, clients) written by the tests are unique per run only
	local db="openhim_ci_$(date -u +%Y%m%d%H%M%S)_$$"
	echo "$db" >"$WORK/openhim.db"
	cat >"$WORK/openhim.json" <<JSON
{
  "bindAddress": "127.0.0.1",
  "mongo": {
    "url": "mongodb://127.0.0.1:$PORT_FERRETDB/$db",
    "atnaUrl": "mongodb://127.0.0.1:$PORT_FERRETDB/$db"
  },
  "logger": { "level": "info", "logToDB": false },
  "router": { "externalHostname": "127.0.0.1", "httpPort": $PORT_ROUTER_HTTP, "httpsPort": $PORT_ROUTER_HTTPS },
  "api": { "httpsPort": $PORT_API },
  "rerun": { "httpPort": $PORT_RERUN, "host": "127.0.0.1" },
  "tcpAdapter": { "httpReceiver": { "httpPort": $PORT_TCP_RECEIVER, "host": "127.0.0.1" } },
  "polling": { "pollingPort": $PORT_POLLING, "host": "127.0.0.1" },
  "alerts": { "enableAlerts": false },
  "reports": { "enableReports": false },
  "statsd": { "enabled": false },
  "certificateManagement": { "watchFSForCert": false }
}
JSON
	# cwd must be the openhim-core package: the mongoose preload resolves mongoose from there.
	# NODE_ENV is cleared so that core reads no config/<env>.json on top of ours.
	# --unhandled-rejections=warn: core 4.0.5 was written for node 8-10, where an unhandled promise rejection only
	# logged a warning; node >= 15 kills the process instead. Seen: an envelope with an `error` object (autoRetry
	# path) makes recordTransactionMetrics reject (NaN maxResponseTime); on node 20 that killed core's worker
	# (API and router down until the master restarted it). With warn, core behaves as on its own node versions.
	(
		cd "$CACHE/openhim/node_modules/openhim-core" &&
			exec env -u NODE_ENV node --unhandled-rejections=warn -r "$CI_DIR/openhim/mongoose-usepusheach.js" \
				lib/server.js --conf="$WORK/openhim.json"
	) >"$LOGS/openhim.log" 2>&1 </dev/null &
	echo $! >"$WORK/openhim.pid"
	wait_for openhim "API https://127.0.0.1:$PORT_API/heartbeat and router :$PORT_ROUTER_HTTP" openhim_started
	log "openhim-core ready: API https://127.0.0.1:$PORT_API, router http://127.0.0.1:$PORT_ROUTER_HTTP, db $db (pid $(cat "$WORK/openhim.pid"))"
}

start_fhir() {
	# run a fresh copy of server.mjs next to the cached node_modules (ESM imports resolve from the file's folder)
	cp "$CI_DIR/fhir-server/server.mjs" "$CACHE/fhir-server/server.mjs"
	(
		cd "$CACHE/fhir-server" &&
			exec env PORT="$PORT_FHIR" HOST=127.0.0.1 node --experimental-websocket --no-warnings server.mjs
	) >"$LOGS/fhir.log" 2>&1 </dev/null &
	echo $! >"$WORK/fhir.pid"
	wait_for fhir "GET http://127.0.0.1:$PORT_FHIR/fhir/R4/metadata" http_ok "http://127.0.0.1:$PORT_FHIR/fhir/R4/metadata"
	log "fhir server ready on http://127.0.0.1:$PORT_FHIR/fhir/R4 (pid $(cat "$WORK/fhir.pid"))"
}

cmd_env() {
	echo "export OPENHIM_API_URL=https://127.0.0.1:$PORT_API OPENHIM_ROUTER_URL=http://127.0.0.1:$PORT_ROUTER_HTTP" \
		"OPENHIM_USERNAME=$OPENHIM_USER OPENHIM_PASSWORD=$OPENHIM_PASS FHIR_BASE_URL=http://127.0.0.1:$PORT_FHIR/fhir/R4"
}

cmd_start() {
	local n
	for n in ferretdb openhim fhir; do
		if alive "$n"; then
			die "$n is already running (pid $(cat "$WORK/$n.pid")); run: bash .ci/stack.sh stop"
		fi
	done
	cmd_install
	check_port_free "$PORT_FERRETDB" ferretdb
	for n in "$PORT_API" "$PORT_ROUTER_HTTP" "$PORT_ROUTER_HTTPS" "$PORT_RERUN" "$PORT_TCP_RECEIVER" "$PORT_POLLING"; do
		check_port_free "$n" openhim
	done
	check_port_free "$PORT_FHIR" fhir
	mkdir -p "$LOGS"
	local t0=$SECONDS
	# a failed start stops whatever it had started already
	trap 'rc=$?; if ((rc != 0)); then log "start failed: stopping what was started"; cmd_stop; fi' EXIT
	start_ferretdb
	start_openhim
	start_fhir
	trap - EXIT
	log "stack ready in $((SECONDS - t0))s; logs in $LOGS"
	cmd_env
}

# stop_pids NAME...: TERM the recorded PIDs, wait up to 10 s for all, then KILL the ones left.
stop_pids() {
	local name pid i left
	local -a names=() pids=()
	for name in "$@"; do
		[[ -f $WORK/$name.pid ]] || continue
		pid=$(cat "$WORK/$name.pid")
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
			names+=("$name")
			pids+=("$pid")
		fi
		rm -f "$WORK/$name.pid"
	done
	for i in $(seq 1 100); do
		left=0
		for pid in "${pids[@]}"; do
			kill -0 "$pid" 2>/dev/null && left=1
		done
		((left)) || break
		sleep 0.1
	done
	for i in "${!pids[@]}"; do
		if kill -0 "${pids[$i]}" 2>/dev/null; then
			log "${names[$i]} (pid ${pids[$i]}) ignored TERM for 10s; sending KILL"
			kill -KILL "${pids[$i]}" 2>/dev/null || true
		fi
		log "stopped ${names[$i]} (pid ${pids[$i]})"
	done
}

cmd_stop() {
	# openhim-core 4.0.5 runs as one node process; it closes its servers on TERM. The database goes last.
	stop_pids fhir openhim
	stop_pids ferretdb
}

cmd_status() {
	local n rc=0
	for n in ferretdb openhim fhir; do
		if alive "$n"; then
			echo "$n: running (pid $(cat "$WORK/$n.pid"))"
		else
			echo "$n: not running"
			rc=1
		fi
	done
	return $rc
}

case ${1:-} in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
env) cmd_env ;;
status) cmd_status ;;
*)
	echo "usage: bash .ci/stack.sh install|start|stop|env|status" >&2
	exit 2
	;;
esac
