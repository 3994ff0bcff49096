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

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-50}"
qb_require models.sh "Debian: apt-get install wrk" wrk
qb_measure_start

BIN="$(qb_release_bin quizbench quizbench QUIZBENCH_BIN)"
export DATABASE_URL="${DATABASE_URL%/*}/quizbench_models" LOG_LEVEL="${LOG_LEVEL:-warn}"
"$BIN" migrate >&2
"$BIN" seed >&2

qb_write_login_lua "$WORK/login.lua"

# measure URL [wrk args] -> "rps p50 p99" (milliseconds)
measure() {
	local out
	out="$(qb_wrk models.sh "$@")"
	printf '%s %sms %sms\n' "$(qb_wrk_rps "$out")" "$(qb_wrk_p50 "$out")" "$(qb_wrk_p99 "$out")"
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
	port="$(qb_free_port)"
	echo "==> $name: $vars" >&2
	# shellcheck disable=SC2086 # $vars is a list of NAME=VALUE words
	env $vars BIND="127.0.0.1:$port" "$BIN" serve >"$WORK/server.log" 2>&1 &
	PIDS=("$!")
	qb_wait_ready "http://127.0.0.1:$port/readyz"
	quizzes="$(measure "http://127.0.0.1:$port/api/v1/quizzes")"
	login="$(measure -s "$WORK/login.lua" "http://127.0.0.1:$port/api/v1/auth/login")"
	kill "${PIDS[0]}"
	wait "${PIDS[0]}" 2>/dev/null || true
	PIDS=()
	printf '%-26s | %-28s | %-28s\n' "$name" "$quizzes" "$login" >>"$WORK/table"
done

echo
echo "quizbench process models — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, wrk -t2 -c$CONNECTIONS -d${DURATION}s"
echo "argon2: m=${ARGON2_MEMORY_KIB:-19456} KiB t=${ARGON2_ITERATIONS:-2} p=${ARGON2_PARALLELISM:-1}"
cat "$WORK/table"
