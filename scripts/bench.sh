#!/usr/bin/env bash
# scripts/bench.sh — side-by-side throughput of quizbench endpoints against
# nginx `return 200`, measured with wrk in one run (the machine is shared and
# absolute numbers drift, so only the ratios are compared).
#
# Brings up PostgreSQL and Redis (scripts/services.sh), builds the release
# binary, migrates and seeds if empty, starts nginx (2 workers, `return 200`)
# and quizbench on free ports, then runs wrk against each target in turn and
# prints a table: requests/s, p50/p99 latency, ratio to nginx.
#
#   scripts/bench.sh                       # 10 s per target, 50 connections
#   DURATION=5s CONNECTIONS=100 scripts/bench.sh
#   PROCESSES=1 THREADS=2 scripts/bench.sh # any server variable passes through
#   QUIZBENCH_BIN=target/release/quizbench scripts/bench.sh   # skip the build
#
# Needs wrk and nginx (Debian: apt-get install wrk nginx-light).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-50}"
WRK_THREADS="${WRK_THREADS:-2}"
for tool in wrk nginx curl; do
	command -v "$tool" >/dev/null || {
		echo "bench.sh: $tool is missing (Debian: apt-get install wrk nginx-light curl)" >&2
		exit 1
	}
done

qb_services_up
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$WORK"
	qb_services_release
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# QUIZBENCH_BIN=path benchmarks an existing binary instead of building one.
BIN="${QUIZBENCH_BIN:-}"
if [[ -z "$BIN" ]]; then
	echo "==> cargo build --release -p quizbench" >&2
	cargo build --release -p quizbench >&2
	BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/quizbench"
fi
"$BIN" migrate >&2
"$BIN" seed --if-empty >&2

# nginx: 2 workers answering 200 with an empty body.
NGINX_PORT="$(free_port)"
cat >"$WORK/nginx.conf" <<CONF
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK;
    proxy_temp_path $WORK;
    fastcgi_temp_path $WORK;
    uwsgi_temp_path $WORK;
    scgi_temp_path $WORK;
    server {
        listen 127.0.0.1:$NGINX_PORT reuseport;
        location / { return 200; }
    }
}
CONF
nginx -c "$WORK/nginx.conf" -g 'daemon off;' &
PIDS+=($!)

# quizbench: the best model for this box unless the caller says otherwise.
export PROCESSES="${PROCESSES:-auto}" THREADS="${THREADS:-1}" LOG_LEVEL="${LOG_LEVEL:-warn}"
QB_PORT="$(free_port)"
BIND="127.0.0.1:$QB_PORT" "$BIN" serve >"$WORK/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
	curl -fsS "http://127.0.0.1:$QB_PORT/readyz" >/dev/null 2>&1 && curl -fsS "http://127.0.0.1:$NGINX_PORT/" >/dev/null 2>&1 && break
	sleep 0.1
done
curl -fsS "http://127.0.0.1:$QB_PORT/readyz" >/dev/null || {
	cat "$WORK/server.log" >&2
	exit 1
}
QB="http://127.0.0.1:$QB_PORT"
TOKEN="$(curl -fsS -X POST "$QB/api/v1/auth/login" -H 'content-type: application/json' \
	-d '{"username":"student1","password":"quizbench"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')"
cat >"$WORK/login.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"username":"student%d","password":"quizbench"}', (counter % 10000) + 1)
  return wrk.format(nil, nil, nil, body)
end
LUA

# run NAME URL [wrk args...] -> appends "NAME rps p50 p99" to results
RESULTS="$WORK/results"
run() {
	local name="$1" url="$2"
	shift 2
	echo "==> wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency $* $url" >&2
	local out
	out="$(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url")"
	local rps p50 p99 non2xx
	rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
	p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
	p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
	non2xx="$(awk '/Non-2xx/ {print $5}' <<<"$out")"
	echo "$name $rps $p50 $p99 ${non2xx:-0}" >>"$RESULTS"
}

run "nginx-return-200" "http://127.0.0.1:$NGINX_PORT/"
run "healthz" "$QB/healthz"
run "quiz-list-cached" "$QB/api/v1/quizzes"
run "select-options" "$QB/api/v1/students/select-options" -H "Cookie: qb_session=$TOKEN"
run "login" "$QB/api/v1/auth/login" -s "$WORK/login.lua"

echo
echo "quizbench bench — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION"
echo "server: PROCESSES=$PROCESSES THREADS=$THREADS; nginx: 2 workers, return 200"
awk 'NR == 1 { base = $2 }
	{ printf "%-18s %12s req/s  p50 %-9s p99 %-9s non-2xx %-6s %6.2fx nginx\n", $1, $2, $3, $4, $5, $2 / base }' "$RESULTS"
