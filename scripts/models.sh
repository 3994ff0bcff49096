#!/usr/bin/env bash
# scripts/models.sh — the process-model table: req/s, p50 and p99 of the
# cached quiz list and of login for each model, with wrk at 50 connections,
# every model measured in the same run.
#
# Brings up PostgreSQL and Redis (scripts/services.sh), builds the release
# binary unless QUIZBENCH_BIN is set, seeds its own database
# (`quizbench_models`) and starts the server once per model on a free port.
#
#   scripts/models.sh                     # 10 s per cell
#   DURATION=5 scripts/models.sh
#   ARGON2_MEMORY_KIB=1024 ARGON2_ITERATIONS=1 scripts/models.sh   # cheap login
#
# Needs wrk (Debian: apt-get install wrk).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-50}"
command -v wrk >/dev/null || {
	echo "models.sh: wrk is missing (Debian: apt-get install wrk)" >&2
	exit 1
}

qb_services_up
WORK="$(mktemp -d)"
SERVER=""
cleanup() {
	[[ -z "$SERVER" ]] || kill "$SERVER" 2>/dev/null || true
	[[ -z "$SERVER" ]] || wait "$SERVER" 2>/dev/null || true
	rm -rf "$WORK"
	qb_services_release
}
trap cleanup EXIT

BIN="${QUIZBENCH_BIN:-}"
if [[ -z "$BIN" ]]; then
	echo "==> cargo build --release -p quizbench" >&2
	cargo build --release -p quizbench >&2
	BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/quizbench"
fi
export DATABASE_URL="${DATABASE_URL%/*}/quizbench_models" LOG_LEVEL="${LOG_LEVEL:-warn}"
"$BIN" migrate >&2
"$BIN" seed >&2

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

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

# measure NAME URL [wrk args] -> "rps p50 p99"
measure() {
	local out
	out="$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@")"
	if grep -q "Non-2xx" <<<"$out"; then
		echo "models.sh: non-2xx answers:" >&2
		echo "$out" >&2
	fi
	printf '%s %s %s\n' \
		"$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")" \
		"$(awk '$1 == "50%" {print $2}' <<<"$out")" \
		"$(awk '$1 == "99%" {print $2}' <<<"$out")"
}

# name | variables
MODELS=(
	"1x1 (single event loop)|PROCESSES=1 THREADS=1"
	"1x2 (thread pool)|PROCESSES=1 THREADS=2"
	"2x1 (prefork, reuseport)|PROCESSES=2 THREADS=1"
	"2x2 (prefork x threads)|PROCESSES=2 THREADS=2"
	"thread-per-core 2|PROCESSES=1 THREADS=2 THREAD_PER_CORE=true"
)

printf '%-26s | %-28s | %-28s\n' "model" "cached quiz list: req/s p50 p99" "login: req/s p50 p99" >"$WORK/table"
for model in "${MODELS[@]}"; do
	name="${model%%|*}"
	vars="${model#*|}"
	port="$(free_port)"
	echo "==> $name: $vars" >&2
	# shellcheck disable=SC2086 # $vars is a list of NAME=VALUE words
	env $vars BIND="127.0.0.1:$port" "$BIN" serve >"$WORK/server.log" 2>&1 &
	SERVER=$!
	for _ in $(seq 1 100); do
		curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	quizzes="$(measure "http://127.0.0.1:$port/api/v1/quizzes")"
	login="$(measure -s "$WORK/login.lua" "http://127.0.0.1:$port/api/v1/auth/login")"
	kill "$SERVER"
	wait "$SERVER" 2>/dev/null || true
	SERVER=""
	printf '%-26s | %-28s | %-28s\n' "$name" "$quizzes" "$login" >>"$WORK/table"
done

echo
echo "quizbench process models — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, wrk -t2 -c$CONNECTIONS -d${DURATION}s"
echo "argon2: m=${ARGON2_MEMORY_KIB:-19456} KiB t=${ARGON2_ITERATIONS:-2} p=${ARGON2_PARALLELISM:-1}"
cat "$WORK/table"
