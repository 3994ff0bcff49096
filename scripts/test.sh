#!/usr/bin/env bash
# scripts/test.sh — the project's checks, as CI runs them (.ci/run).
#
# Brings up PostgreSQL and Redis (scripts/services.sh: the running ones, else
# Docker Compose, else throwaway local instances, stopped again on exit), then
# runs, stopping at the first failure:
#   cargo fmt --all -- --check
#   cargo clippy --workspace --all-targets -- -D warnings
#   cargo test --workspace [extra arguments]
# Tests get TEST_DATABASE_URL (a server where they may CREATE DATABASE) and
# TEST_REDIS_URL. QB_SKIP_LINT=1 skips fmt and clippy. The fault suite needs
# schemathesis: installed once into ~/.cache/quizbench/venv (QB_SKIP_SCHEMATHESIS=1
# skips that test).
#
# wrk (quizload's test of printed secrets runs it) is installed once with
# apt-get when missing.
#
#   scripts/test.sh
#   scripts/test.sh -- --nocapture        # extra arguments go to cargo test

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

qb_services_up
trap qb_services_release EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

run() {
	echo "==> $*" >&2
	"$@"
}

if [[ "${QB_SKIP_LINT:-0}" != 1 ]]; then
	run cargo fmt --all -- --check
	run cargo clippy --workspace --all-targets -- -D warnings
fi
# No unused dependency: cargo-machete reads every crate's sources against
# its Cargo.toml. Installed once into ~/.cargo/bin, so CI's fresh clones
# reuse it.
if [[ "${QB_SKIP_LINT:-0}" != 1 ]]; then
	if ! cargo machete --version >/dev/null 2>&1; then
		run cargo install --locked --quiet cargo-machete@0.9.2
	fi
	run cargo machete
fi
# The fault suite runs schemathesis against the server's OpenAPI document.
# It lives in a venv outside the checkout, so CI's fresh clones reuse it.
if [[ "${QB_SKIP_SCHEMATHESIS:-0}" != 1 ]]; then
	if [[ -z "${SCHEMATHESIS:-}" ]] && ! command -v schemathesis >/dev/null; then
		venv="${XDG_CACHE_HOME:-$HOME/.cache}/quizbench/venv"
		if [[ ! -x "$venv/bin/schemathesis" ]]; then
			run python3 -m venv "$venv"
			run "$venv/bin/pip" install --quiet 'schemathesis>=4.32,<5'
		fi
		export SCHEMATHESIS="$venv/bin/schemathesis"
	fi
fi
# quizload's tests run wrk against the real server (to check that the
# session cookie it is given is never printed). A Debian package, installed
# once; without root or apt-get, that part of the test says it is skipped.
if ! command -v wrk >/dev/null; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		run apt-get install -y -qq wrk || { run apt-get update -qq && run apt-get install -y -qq wrk; }
	elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
		run sudo apt-get install -y -qq wrk || echo "wrk not installed: its quizload test is skipped" >&2
	fi
fi
run cargo test --workspace "$@"
echo "==> all checks passed" >&2
