#!/usr/bin/env bash
# scripts/measure-indexes.sh — reruns the index measurements of
# docs/database.md on a freshly seeded database of its own
# (`quizbench_indexes`, the reference set), with pgbench:
#
#   select-options tps: the covering partial index (users_select_options_idx)
#     against the plain (organization_id, cohort_id) index it replaced, and
#     against no index (what document 004's experiment runs without);
#   the time to delete a quiz (its attempts and progress cascade) with and
#     without the foreign-key indexes attempts_quiz_id_idx and
#     progress_quiz_id_idx;
#   submit tps (the statements of one submission) with and without them.
#
# Each pair runs in TRIALS alternating trials, the order swapped every
# trial; it prints the medians and the median of the per-trial ratios.
# Also writes the plans of scripts/sql/explain.sql to plans.txt in the
# current directory.
#
#   scripts/measure-indexes.sh
#   TRIALS=5 DURATION=10 CONNECTIONS=16 QUIZBENCH_BIN=target/release/quizbench scripts/measure-indexes.sh
#
# Needs psql and pgbench. Not part of the test run.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

TRIALS="${TRIALS:-5}"
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-16}"
qb_require measure-indexes.sh "Debian: apt-get install postgresql-client" psql pgbench python3

qb_services_up
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"; qb_services_release' EXIT

BIN="$(cd "$ROOT" && qb_release_bin quizbench quizbench QUIZBENCH_BIN)"
base_url="${DATABASE_URL%%\?*}"
export DATABASE_URL="${base_url%/*}/quizbench_indexes"
"$BIN" migrate >&2
"$BIN" seed >&2
sql() { psql -qAtX "$DATABASE_URL" "$@"; }
sql -c 'vacuum (analyze)' -c 'checkpoint'
psql -X "$DATABASE_URL" -f "$ROOT/scripts/sql/explain.sql" >plans.txt 2>&1
echo "==> plans written to plans.txt" >&2

cat >"$WORK/select-options.sql" <<'SQL'
\set cohort random(1, 10)
select id, display_name || ' (' || username || ')' as label
  from users
 where organization_id = 1 and cohort_id = :cohort and role = 'student'
 order by id
 limit 1000;
SQL
qb_write_submit_sql 10000 "$WORK/submit.sql"

tps() {
	pgbench -n -M prepared -c "$CONNECTIONS" -j 2 -T "$DURATION" -f "$1" "$DATABASE_URL" 2>/dev/null |
		awk '/^tps/ {print $3}'
}

# Index states. Each drops what the others create, so any order works.
covering() {
	sql -c 'drop index if exists users_organization_cohort_idx' \
		-c "create index if not exists users_select_options_idx on users (organization_id, cohort_id, id) include (display_name, username) where role = 'student'" \
		-c 'analyze users'
}
plain() {
	sql -c 'drop index if exists users_select_options_idx' \
		-c 'create index if not exists users_organization_cohort_idx on users (organization_id, cohort_id)' \
		-c 'analyze users'
}
no_index() { sql -c 'drop index if exists users_select_options_idx' -c 'drop index if exists users_organization_cohort_idx'; }
fk_indexes() {
	sql -c 'create index if not exists attempts_quiz_id_idx on attempts (quiz_id)' \
		-c 'create index if not exists progress_quiz_id_idx on progress (quiz_id)' -c 'checkpoint'
}
no_fk_indexes() {
	sql -c 'drop index if exists attempts_quiz_id_idx' -c 'drop index if exists progress_quiz_id_idx' -c 'checkpoint'
}

# Milliseconds to delete quiz 7 (rolled back): the median of 5 runs in one
# session, after one run that warms its caches and plans.
quiz_delete_ms() {
	for _ in 1 2 3 4 5 6; do
		echo "begin; explain (analyze, format json) delete from quizzes where id = 7; rollback;"
	done | sql | grep -o '"Execution Time": [0-9.]*' | awk '{print $3}' | tail -n +2 | sort -g | sed -n 3p
}

# in_state STATE MEASURE: MEASURE's figure with the indexes as STATE sets them.
in_state() {
	$1 >/dev/null
	$2
}

# pair LABEL STATE_A STATE_B MEASURE: TRIALS alternating trials.
pair() {
	local label="$1" a="$2" b="$3" measure="$4"
	qb_trials "$label" "in_state $a $measure" "in_state $b $measure" | python3 -c '
import statistics as st, sys
label, a, b = sys.argv[1:4]
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
ratio = st.median(r[1] / r[0] for r in rows)
print(f"{label}: {a} {st.median(r[0] for r in rows):g}, {b} {st.median(r[1] for r in rows):g}, ratio {b}/{a} x{ratio:.3f}")' \
		"$label" "$a" "$b"
}

echo "measure-indexes.sh — $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$ROOT" rev-parse --short HEAD), $(nproc) CPUs, pgbench -M prepared -c $CONNECTIONS -T $DURATION, $TRIALS alternating trials" >&2
results=()
so_tps() { tps "$WORK/select-options.sql"; }
submit_tps() { tps "$WORK/submit.sql"; }
results+=("$(pair "select-options tps" plain covering so_tps)")
results+=("$(pair "select-options tps" no_index covering so_tps)")
covering >/dev/null
results+=("$(pair "quiz delete ms" no_fk_indexes fk_indexes quiz_delete_ms)")
results+=("$(pair "submit tps" no_fk_indexes fk_indexes submit_tps)")
fk_indexes >/dev/null
echo
printf '%s\n' "${results[@]}"
