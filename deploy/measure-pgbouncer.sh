#!/usr/bin/env bash
# deploy/measure-pgbouncer.sh — what PgBouncer in session pooling costs quizbench:
# the same server, the same load, once straight to PostgreSQL and once through a
# private PgBouncer (deploy/pgbouncer/render-config.sh), alternated TRIALS times.
# Prints one line per run and the medians; the figures in docs/deployment.md come
# from it (command, date and commit beside them).
#
#   deploy/measure-pgbouncer.sh
#   TRIALS=5 DURATION=10s CONCURRENCY=32 deploy/measure-pgbouncer.sh
#   QUIZBENCH_BIN=... QUIZLOAD_BIN=... deploy/measure-pgbouncer.sh   # prebuilt release binaries
#
# Loads (quizload run): `GET /queries?queries=20` (20 single-row reads per request,
# each a round trip through the pooler) and the select-options scenario (document
# 004's call: a session in Redis, one read of 100 rows). The server: PROCESSES=1,
# THREADS=1, DB_POOL_MAX=8 (DB_POOL_MIN=8, so connections are open before the run);
# PgBouncer's pool: 8 server connections, so nobody waits for one. Its own database
# (dropped at the end) on the PostgreSQL that scripts/services.sh finds or starts.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

TRIALS="${TRIALS:-5}"
DURATION="${DURATION:-10s}"
CONCURRENCY="${CONCURRENCY:-32}"
qb_require measure-pgbouncer.sh "Debian: apt-get install pgbouncer" pgbouncer
PGBOUNCER="$(PATH="$PATH:/usr/sbin" command -v pgbouncer)"
QUIZBENCH="$(qb_release_bin quizbench quizbench QUIZBENCH_BIN)"
QUIZLOAD="$(qb_release_bin loadtests quizload QUIZLOAD_BIN)"

DB="qb_pooler_cost_$$"
qb_measure_cleanup() {
	wait 2>/dev/null || true
	psql "$TEST_DATABASE_URL" -qc "drop database if exists $DB with (force)" >/dev/null 2>&1 || true
	if command -v redis-cli >/dev/null; then
		redis-cli -u "$REDIS_URL" --scan --pattern "qbpoolercost$$:*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null || true
	fi
}
qb_measure_start
chmod 755 "$WORK"

qb_url_parts "$DATABASE_URL" 5432
pg_host="$QB_U_HOST" pg_port="$QB_U_PORT"
direct="postgres://postgres@$pg_host:$pg_port/$DB"
bouncer_port="$(qb_free_port 36432)"
pooled="postgres://postgres@127.0.0.1:$bouncer_port/$DB"

echo "==> seeding $DB (reference data set)" >&2
DATABASE_URL="$direct" "$QUIZBENCH" seed >/dev/null

PGBOUNCER_LISTEN_ADDR=127.0.0.1 PGBOUNCER_LISTEN_PORT="$bouncer_port" PGBOUNCER_UPSTREAM_HOST="$pg_host" \
	PGBOUNCER_UPSTREAM_PORT="$pg_port" PGBOUNCER_POOL_SIZE=8 sh deploy/pgbouncer/render-config.sh "$WORK/pgbouncer"
chmod -R a+rX "$WORK/pgbouncer"
as_user=()
[[ "$(id -u)" == 0 ]] && as_user=(-u nobody)
"$PGBOUNCER" "${as_user[@]}" "$WORK/pgbouncer/pgbouncer.ini" 2>"$WORK/pgbouncer.log" &
PIDS+=($!)

# serve MODE: starts the server on a free port (direct or pgbouncer); sets SERVER_PID, URL.
serve() {
	local port url pooler
	port="$(qb_free_port 38000)"
	if [[ "$1" == pgbouncer ]]; then url="$pooled" pooler=pgbouncer; else url="$direct" pooler=none; fi
	DATABASE_URL="$url" DB_POOLER="$pooler" BIND="127.0.0.1:$port" PROCESSES=1 THREADS=1 \
		DB_POOL_MAX=8 DB_POOL_MIN=8 REDIS_PREFIX="qbpoolercost$$:" LOG_LEVEL=warn \
		"$QUIZBENCH" serve 2>>"$WORK/server.log" &
	SERVER_PID=$!
	URL="http://127.0.0.1:$port"
	qb_wait_ready "$URL/readyz"
	sleep 1 # DB_POOL_MIN's connections
}

# load NAME ARGS...: one quizload run; prints "rps p50 p99".
load() {
	local name="$1"
	shift
	"$QUIZLOAD" run -q -c "$CONCURRENCY" -d "$DURATION" --json "$WORK/$name.json" "$@" >/dev/null 2>&1
	python3 - "$WORK/$name.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
lat = d.get("latency_ms") or d.get("latency") or {}
def pick(*keys):
    for k in keys:
        if k in lat: return lat[k]
        if k in d: return d[k]
    return float("nan")
errors = d.get("errors", 0)
if isinstance(errors, dict):
    errors = errors.get("total", 0)
print(f'{d["rps"]:.0f} {pick("p50", "p50_ms"):.2f} {pick("p99", "p99_ms"):.2f} {errors}')
PY
}

printf '%-9s %-5s %-15s %8s %8s %8s %6s\n' mode trial load rps p50_ms p99_ms errors
for ((t = 1; t <= TRIALS; t++)); do
	for mode in direct pgbouncer; do
		serve "$mode"
		for spec in "queries20 $URL/queries?queries=20" "select-options --scenario select-options --base $URL"; do
			read -r name args <<<"$spec"
			# shellcheck disable=SC2086 # args is a word list on purpose
			read -r rps p50 p99 errors < <(load "$mode-$t-$name" $args)
			printf '%-9s %-5s %-15s %8s %8s %8s %6s\n' "$mode" "$t" "$name" "$rps" "$p50" "$p99" "$errors" | tee -a "$WORK/results.txt"
		done
		kill "$SERVER_PID"
		wait "$SERVER_PID" 2>/dev/null || true
	done
done
echo "medians over $TRIALS trials (c=$CONCURRENCY, $DURATION each; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%Y-%m-%dT%H:%MZ)):"
python3 - "$WORK/results.txt" <<'PY'
import statistics, sys, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    mode, trial, load, rps, p50, p99, errors = line.split()
    runs[(load, mode)].append((float(rps), float(p50), float(p99)))
for load in sorted({k[0] for k in runs}):
    d, b = runs[(load, "direct")], runs[(load, "pgbouncer")]
    med = lambda xs, i: statistics.median(x[i] for x in xs)
    print(f"  {load:15} direct {med(d,0):8.0f} rps p50 {med(d,1):6.2f} ms p99 {med(d,2):6.2f} ms | "
          f"pgbouncer {med(b,0):8.0f} rps p50 {med(b,1):6.2f} ms p99 {med(b,2):6.2f} ms | "
          f"throughput ratio {med(b,0)/med(d,0):.3f} (min..max direct {min(x[0] for x in d):.0f}..{max(x[0] for x in d):.0f}, "
          f"pgbouncer {min(x[0] for x in b):.0f}..{max(x[0] for x in b):.0f})")
PY
