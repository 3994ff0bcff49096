#!/usr/bin/env bash
# scripts/measure-exceptions.sh — reruns the pool measurements of
# docs/exceptions.md: our PostgreSQL pool against sqlx's PgPool, and our
# Redis pool against deadpool-redis, each as ratios measured side by side.
#
#   scripts/measure-exceptions.sh db       # ours vs --features sqlx-pool
#   scripts/measure-exceptions.sh redis    # ours vs --features deadpool-redis
#   scripts/measure-exceptions.sh          # both
#   TRIALS=5 DURATION=10 CONNECTIONS=50 scripts/measure-exceptions.sh db
#   OWN_BIN=... SQLX_POOL_BIN=... DEADPOOL_REDIS_BIN=... scripts/measure-exceptions.sh
#                                          # skip the builds
#
# Builds the release binaries it needs into CARGO_TARGET_DIR (default
# target-measure/, so a run does not clobber target/), creates and seeds its
# own database (`quizbench_exceptions`), and starts both builds of a pair at
# once on free ports (PROCESSES=1 THREADS=1 unless set; the idle one takes
# no CPU). Each route is measured with wrk in TRIALS alternating trials, the
# order swapped every trial; per trial it records req/s, p99, the server's
# CPU time per request and the CPU time per request of the server's
# PostgreSQL backends (db) or of redis-server (redis; shared with anything
# else using that Redis). Prints per trial, then medians and the median of
# the per-trial ratios crate/ours (for req/s above 1 means the crate is
# faster; for p99 and CPU below 1 means the crate is cheaper).
#
# Needs wrk, curl, psql, redis-cli and python3. Not part of the test run.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

WHAT="${1:-all}"
case "$WHAT" in db | redis | all) ;; *)
	echo "usage: $0 [db|redis|all]" >&2
	exit 2
	;;
esac
export DURATION="${DURATION:-10}" CONNECTIONS="${CONNECTIONS:-50}" WRK_THREADS="${WRK_THREADS:-1}"
TRIALS="${TRIALS:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-measure}"
qb_require measure-exceptions.sh "Debian: apt-get install wrk curl postgresql-client redis-tools" wrk curl psql redis-cli python3

qb_services_up
WORK="$(mktemp -d)"
PIDS=()
PREFIX="qbx$$:"
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	redis-cli -u "$REDIS_URL" --scan --pattern "$PREFIX*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null || true
	rm -rf "$WORK"
	qb_services_release
}
trap cleanup EXIT

# build FEATURES NAME: a release build of quizbench with FEATURES, copied
# out of the shared target dir (the next build overwrites it).
build() {
	echo "==> cargo build --release --bin quizbench ${1:+--features $1}" >&2
	cargo build --release --bin quizbench ${1:+--features "$1"} >&2
	cp "$CARGO_TARGET_DIR/release/quizbench" "$WORK/$2"
	echo "$WORK/$2"
}
OWN="${OWN_BIN:-$(build "" quizbench-own)}"
if [[ "$WHAT" != redis ]]; then SQLX="${SQLX_POOL_BIN:-$(build sqlx-pool quizbench-sqlx-pool)}"; fi
if [[ "$WHAT" != db ]]; then DEADPOOL="${DEADPOOL_REDIS_BIN:-$(build deadpool-redis quizbench-deadpool-redis)}"; fi

base_url="${DATABASE_URL%%\?*}"
export DATABASE_URL="${base_url%/*}/quizbench_exceptions"
"$OWN" migrate >&2
"$OWN" seed >&2
psql -qX "$DATABASE_URL" -c 'vacuum (analyze)' -c 'checkpoint' >&2 || true

export PROCESSES="${PROCESSES:-1}" THREADS="${THREADS:-1}" LOG_LEVEL="${LOG_LEVEL:-warn}"
export REDIS_PREFIX="$PREFIX" CACHE_MODE=redis FILES_DIR="$WORK/files"

# start NAME BIN: serves BIN on a free port. Sets PORT_<NAME> and PID_<NAME>.
start() {
	local port
	port="$(qb_free_port)"
	BIND="127.0.0.1:$port" "$2" serve >>"$WORK/$1.log" 2>&1 &
	PIDS+=($!)
	printf -v "PORT_$1" '%s' "$port"
	printf -v "PID_$1" '%s' "$!"
	qb_wait_ready "http://127.0.0.1:$port/readyz" || {
		cat "$WORK/$1.log" >&2
		exit 1
	}
}

# cpu_ticks NAME: CPU clock ticks so far of server NAME (the process and
# its children), and of its PostgreSQL backends (found by the client ports
# of the server's sockets to PostgreSQL) or of redis-server.
cpu_ticks() {
	local pid_var="PID_$1" pg_port redis_pid=""
	qb_url_parts "$DATABASE_URL" 5432
	pg_port="$QB_U_PORT"
	if [[ "$SECTION" == redis ]]; then
		redis_pid="$(redis-cli -u "$REDIS_URL" info server | awk -F: '/^process_id/ {print $2}' | tr -d '\r')"
	fi
	python3 - "${!pid_var}" "$pg_port" "$redis_pid" "$DATABASE_URL" <<'PY'
import os, subprocess, sys
server_pid, pg_port, redis_pid, url = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
def stat(pid):
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
def ticks(pid):
    try:
        f = stat(pid)
        return int(f[11]) + int(f[12])  # utime + stime
    except (OSError, IndexError):
        return 0
def tree(pid):
    out = [pid]
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if stat(p)[1] == str(pid):
                    out += tree(int(p))
            except OSError:
                pass
    return out
pids = tree(server_pid)
if redis_pid:
    backends = [int(redis_pid)]
else:
    # Local ports of the server's TCP sockets to PostgreSQL's port.
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            pass
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).readlines()[1:]:
            f = line.split()
            local, remote, inode = f[1], f[2], f[9]
            if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == pg_port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    backends = []
    if ports:
        q = "select pid from pg_stat_activity where client_port in (%s)" % ",".join(map(str, ports))
        out = subprocess.run(["psql", "-AtX", url, "-c", q], capture_output=True, text=True).stdout
        backends = [int(p) for p in out.split()]
server = sum(ticks(p) for p in pids)
print(server, ";".join(f"{p}={ticks(p)}" for p in backends))
PY
}

# measure NAME ROUTE -> "rps p99_ms server_us_per_req backend_us_per_req"
measure() {
	local name="$1" route="$2" port_var="PORT_$1" before after out
	before="$(cpu_ticks "$name")"
	out="$(route_wrk "$route" "http://127.0.0.1:${!port_var}")"
	after="$(cpu_ticks "$name")"
	python3 - "$before" "$after" "$(qb_wrk_rps "$out")" "$(qb_wrk_p99 "$out")" "$DURATION" <<'PY'
import os, sys
hz = os.sysconf("SC_CLK_TCK")
def parse(s):
    server, backends = s.split(" ", 1)
    return int(server), dict(kv.split("=") for kv in backends.strip().split(";") if kv)
(s0, b0), (s1, b1) = parse(sys.argv[1]), parse(sys.argv[2])
rps, p99, secs = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
n = rps * secs
# A backend that appeared during the run counts from zero.
backend = sum(int(t) - int(b0.get(p, 0)) for p, t in b1.items())
print(f"{rps:.0f} {p99:.3f} {(s1 - s0) / hz / n * 1e6:.2f} {backend / hz / n * 1e6:.2f}")
PY
}

# route_wrk ROUTE BASE: runs wrk for ROUTE against BASE, prints its report.
route_wrk() {
	case "$1" in
	db) qb_wrk measure "$2/db" ;;
	select-options) qb_wrk measure -H "Cookie: qb_session=$TOKEN" "$2/api/v1/students/select-options" ;;
	submit) qb_wrk measure -s "$WORK/submit.lua" "$2/" ;;
	quizzes) qb_wrk measure "$2/api/v1/quizzes" ;;
	files) qb_wrk measure -H "Cookie: qb_session=$TOKEN" "$2/api/v1/files" ;;
	esac
}

# pair ROUTE A B: TRIALS alternating trials of ROUTE on servers A and B,
# then the medians and the median per-trial ratios B/A.
pair() {
	local route="$1" a="$2" b="$3"
	route_wrk "$route" "http://127.0.0.1:$(eval echo "\$PORT_$a")" >/dev/null # warm-up (pools fill)
	route_wrk "$route" "http://127.0.0.1:$(eval echo "\$PORT_$b")" >/dev/null
	# each side: req/s p99_ms server_us/req backend_us/req
	qb_trials "$route" "measure $a $route" "measure $b $route" | python3 -c '
import statistics as st, sys
route, a, b = sys.argv[1:4]
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
med = lambda xs: st.median(xs)
out = [route]
for i, what in enumerate(["req/s", "p99 ms", "server CPU us/req", "backend CPU us/req"]):
    ours, theirs = med([r[i] for r in rows]), med([r[4 + i] for r in rows])
    ratio = med([r[4 + i] / r[i] if r[i] else float("nan") for r in rows])
    out.append(f"{what}: {a} {ours:g}, {b} {theirs:g}, ratio x{ratio:.3f}")
print(" | ".join(out))' "$route" "$a" "$b"
}


RESULTS=()
echo "measure-exceptions.sh — $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s, $TRIALS alternating trials; PROCESSES=$PROCESSES THREADS=$THREADS" >&2
if [[ "$WHAT" != redis ]]; then
	SECTION=db
	start ours "$OWN"
	start sqlx_pool "$SQLX"
	base="http://127.0.0.1:$PORT_ours"
	TOKEN="$(qb_token_of "$base" 1)"
	for i in $(seq 1 50); do printf '%s\n' "$(qb_token_of "$base" "$i")"; done >"$WORK/tokens"
	qb_write_submit_lua "$WORK/tokens" "$WORK/submit.lua"
	for route in db select-options submit; do RESULTS+=("$(pair "$route" ours sqlx_pool)"); done
	kill "$PID_ours" "$PID_sqlx_pool"
fi
if [[ "$WHAT" != db ]]; then
	SECTION=redis
	start ours_redis "$OWN"
	start deadpool_redis "$DEADPOOL"
	TOKEN="$(qb_token_of "http://127.0.0.1:$PORT_ours_redis" 1)"
	for route in files quizzes; do RESULTS+=("$(pair "$route" ours_redis deadpool_redis)"); done
fi
echo
printf '%s\n' "${RESULTS[@]}"
