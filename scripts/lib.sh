# scripts/lib.sh — what the measurement scripts share (bench.sh, models.sh,
# deploy/measure-pgbouncer.sh). Sourced; sets ROOT (the checkout), works
# from there, and sources scripts/services.sh too.
#
# qb_require WHO HINT TOOL...        exits 1 naming the first missing TOOL (HINT: how to install)
# qb_measure_start                   PostgreSQL and Redis up (qb_services_up), a temporary $WORK;
#                                    on exit the processes in $PIDS are stopped, qb_measure_cleanup
#                                    runs when the script defines it, $WORK goes, services released
# qb_free_port                       a free TCP port on 127.0.0.1
# qb_release_bin PACKAGE BIN VAR     path of a release binary: $VAR if set, else built
# qb_wait_ready URL                  waits (10 s at most) until URL answers 2xx
# qb_write_login_lua FILE            wrk script: POST login as student1..student10000
# qb_token_of URL N                  session token of studentN (seeded password)
# qb_write_submit_lua TOKENS FILE    wrk script: submit attempts, the tokens of TOKENS in turn
# qb_write_submit_sql USERS FILE     pgbench script: the submit's statements, user 1..USERS
# qb_trial T CMD_A CMD_B             trial T of an alternating pair: runs both (each a word-split
#                                    command), A first when T is odd; prints A's output, then B's
# qb_trials LABEL CMD_A CMD_B        $TRIALS alternating trials (qb_trial), a line each
# qb_wrk NAME [wrk args...] URL      runs wrk --latency, warns on non-2xx, prints its report
# qb_wrk_rps / qb_wrk_p50 / qb_wrk_p99 REPORT   fields of a wrk report (req/s, ms)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

qb_require() {
	local who="$1" hint="$2" tool
	shift 2
	for tool in "$@"; do
		PATH="$PATH:/usr/sbin" command -v "$tool" >/dev/null || {
			echo "$who: $tool is missing ($hint)" >&2
			exit 1
		}
	done
}

PIDS=()
qb_measure_start() {
	qb_services_up
	WORK="$(mktemp -d)"
	trap qb_measure_stop EXIT
}

qb_measure_stop() {
	local pid
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do { wait "$pid"; } 2>/dev/null || true; done
	if declare -F qb_measure_cleanup >/dev/null; then qb_measure_cleanup; fi
	rm -rf "$WORK"
	qb_services_release
}

qb_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

qb_release_bin() {
	local package="$1" bin="$2" var="$3"
	if [[ -n "${!var:-}" ]]; then
		echo "${!var}"
		return
	fi
	echo "==> cargo build --release -p $package" >&2
	cargo build --release -p "$package" >&2
	echo "${CARGO_TARGET_DIR:-$ROOT/target}/release/$bin"
}

qb_wait_ready() {
	for _ in $(seq 1 100); do
		curl -fsS "$1" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	curl -fsS "$1" >/dev/null
}

qb_write_login_lua() {
	cat >"$1" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"username":"student%d","password":"quizbench"}', (counter % 10000) + 1)
  return wrk.format(nil, nil, nil, body)
end
LUA
}

qb_token_of() {
	curl -fsS -X POST "$1/api/v1/auth/login" -H 'content-type: application/json' \
		-d "{\"username\":\"student$2\",\"password\":\"quizbench\"}" | sed 's/.*"token":"\([^"]*\)".*/\1/'
}

qb_write_submit_lua() {
	cat >"$2" <<LUA
tokens = {}
for line in io.lines("$1") do tokens[#tokens + 1] = line end
counter = 0
request = function()
  counter = counter + 1
  local quiz = (counter % 50) + 1
  local first = (quiz - 1) * 10
  local answers = {}
  for q = 1, 9 do answers[#answers + 1] = string.format('{"question_id":%d,"choice_ids":[1]}', first + q) end
  answers[#answers + 1] = string.format('{"question_id":%d,"text":"select"}', first + 10)
  local body = '{"answers":[' .. table.concat(answers, ",") .. ']}'
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = "Bearer " .. tokens[(counter % #tokens) + 1]
  return wrk.format("POST", "/api/v1/quizzes/" .. quiz .. "/attempts", headers, body)
end
LUA
}

qb_write_submit_sql() {
	cat >"$2" <<SQL
\\set quiz random(1, 50)
\\set uid random(1, $1)
select id, kind, points, choices, answer_key from questions where quiz_id = :quiz;
begin;
insert into attempts (user_id, quiz_id, answers, score, max_score, idempotency_key, request_hash)
values (:uid, :quiz, '[{"question_id": 1, "choice_ids": [1]}, {"question_id": 10, "text": "select"}]', 2, 10, null, null)
returning id, quiz_id, score, max_score, submitted_at;
insert into progress (user_id, quiz_id, best_score, max_score, attempt_count, last_attempt_at)
values (:uid, :quiz, 2, 10, 1, now())
on conflict (user_id, quiz_id) do update
   set best_score = greatest(progress.best_score, excluded.best_score),
       max_score = excluded.max_score,
       attempt_count = progress.attempt_count + 1,
       last_attempt_at = excluded.last_attempt_at;
commit;
SQL
}

qb_trial() {
	local a b
	if (($1 % 2)); then
		a="$($2)"
		b="$($3)"
	else
		b="$($3)"
		a="$($2)"
	fi
	echo "$a $b"
}

qb_trials() {
	local t row
	for t in $(seq 1 "$TRIALS"); do
		row="$(qb_trial "$t" "$2" "$3")"
		echo "==> $1 trial $t: $2 | $3: $row" >&2
		echo "$row"
	done
}

qb_wrk() {
	local name="$1"
	shift
	echo "==> wrk -t${WRK_THREADS:-2} -c${CONNECTIONS:-50} -d${DURATION:-10}s $*" >&2
	local out
	out="$(wrk -t"${WRK_THREADS:-2}" -c"${CONNECTIONS:-50}" -d"${DURATION:-10}s" --latency "$@")"
	if grep -q "Non-2xx" <<<"$out"; then
		echo "$name: non-2xx answers:" >&2
		echo "$out" >&2
	fi
	echo "$out"
}

# wrk prints latencies with units (us, ms, s); these print milliseconds.
qb_wrk_ms() {
	awk -v key="$2" '$1 == key {
		v = $2
		if (v ~ /us$/) { sub(/us$/, "", v); v = v / 1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v) }
		else if (v ~ /s$/) { sub(/s$/, "", v); v = v * 1000 }
		printf "%.3f\n", v
	}' <<<"$1"
}
qb_wrk_rps() { awk '/^Requests\/sec:/ {print $2}' <<<"$1"; }
qb_wrk_p50() { qb_wrk_ms "$1" "50%"; }
qb_wrk_p99() { qb_wrk_ms "$1" "99%"; }
