#!/usr/bin/env bash
# scripts/serve.sh — build and run quizbench in the foreground, from a fresh clone.
#
# Brings up PostgreSQL and Redis (scripts/services.sh: the running ones, else
# Docker Compose, else throwaway local instances), builds the release binary,
# applies the migrations, seeds the reference data set if the database has no
# users yet, then runs `quizbench serve` with any extra arguments passed on.
# The script becomes the server (exec: same pid, signals and exit status);
# throwaway services started here are stopped when the server exits.
#
# Without a Rust toolchain (no cargo, or rustc older than 1.85) but with Docker and
# compose, it runs the compose deployment in the foreground instead
# (`docker compose up --build`, or docker-compose; the same variables apply);
# with neither, it says what to install.
#
#   scripts/serve.sh                      # http://127.0.0.1:8000/
#   PROCESSES=2 THREADS=1 scripts/serve.sh
#   PROFILE=NAME scripts/serve.sh         # defaults from config/NAME.env
#   QB_SERVE=docker scripts/serve.sh      # the compose deployment even with cargo

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

MIN_RUST=1.85
# True when cargo is there and rustc is at least MIN_RUST.
rust_ok() {
	command -v cargo >/dev/null 2>&1 || return 1
	local version
	version="$(rustc --version 2>/dev/null | awk '{print $2}')"
	[[ -n "$version" ]] && [[ "$(printf '%s\n%s\n' "$MIN_RUST" "${version%%-*}" | sort -V | head -n 1)" == "$MIN_RUST" ]]
}

if [[ "${QB_SERVE:-auto}" == docker ]] || ! rust_ok; then
	if qb_find_compose; then
		((${#@} == 0)) || echo "serve.sh: arguments '$*' are for 'quizbench serve' and ignored by compose" >&2
		qb_compose_check_pgdata || exit 1
		echo "==> no Rust toolchain >= $MIN_RUST here: running the compose deployment" >&2
		echo "==> ${QB_COMPOSE[*]} up --build   (http://127.0.0.1:${APP_PORT:-8000}/; Ctrl-C stops it)" >&2
		exec "${QB_COMPOSE[@]}" up --build
	fi
	cat >&2 <<MSG
serve.sh: quizbench needs one of:
  - a Rust toolchain >= $MIN_RUST (found: $(rustc --version 2>/dev/null || echo none)):
      curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
    plus PostgreSQL 15 and Redis 7 (Debian/Ubuntu: sudo apt-get install postgresql redis-server),
    or Docker for those two; then run scripts/serve.sh again;
  - or Docker Engine with compose (the 'docker compose' plugin, or docker-compose >= 1.29):
    scripts/serve.sh then runs the container deployment (docker compose up --build).
MSG
	exit 1
fi

qb_services_up
trap qb_services_release EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "==> cargo build --release -p quizbench" >&2
cargo build --release -p quizbench
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/quizbench"
[[ "$BIN" == /* ]] || BIN="$ROOT/$BIN"

echo "==> quizbench migrate" >&2
"$BIN" migrate
echo "==> quizbench seed --if-empty" >&2
"$BIN" seed --if-empty

bind="${BIND:-127.0.0.1:8000}"
host="${bind%:*}"
port="${bind##*:}"
case "$host" in 0.0.0.0 | "" | "[::]" | "::") host=127.0.0.1 ;; esac
cat >&2 <<MSG

quizbench: http://$host:$port/
  log in as student1 ... student10000 or teacher1 ..., password: quizbench
  e.g. curl -s -X POST http://$host:$port/api/v1/auth/login -H 'content-type: application/json' \\
         -d '{"username":"student1","password":"quizbench"}'
  PostgreSQL: $DATABASE_URL   Redis: $REDIS_URL
  Ctrl-C stops the server$( ((${#QB_OWNED[@]} == 0)) || printf ' and the throwaway services (%s)' "${QB_OWNED[*]}")

MSG

trap - EXIT INT TERM
if ((${#QB_OWNED[@]})); then
	# Throwaway services to stop when the server exits, however it exits: a
	# detached watcher (immune to the terminal's Ctrl-C) waits for this pid,
	# which `exec` hands to the server, then stops them. The server itself gets
	# every signal directly and its exit status is this script's.
	server_pid=$$
	(
		(
			trap '' INT TERM HUP QUIT
			while qb_pid_alive "$server_pid"; do sleep 0.2; done
			qb_services_release
		) </dev/null &
	)
fi
exec "$BIN" serve "$@"
