#!/usr/bin/env bash
# scripts/test.sh — the project's checks, as CI runs them (.ci/run).
#
# Brings up PostgreSQL and Redis (scripts/services.sh: the running ones, else
# Docker Compose, else throwaway local instances, stopped again on exit), then
# runs, stopping at the first failure:
#   cargo fmt --all -- --check
#   cargo sqlx prepare --check --workspace   (when sqlx-cli is installed)
#   cargo clippy --workspace --all-targets -- -D warnings
#   cargo test --workspace [extra arguments]
# Every build here is offline (SQLX_OFFLINE=true): the SQL macros check each
# statement against the committed .sqlx/, so a statement without current
# offline data fails, and no build talks to a database. With sqlx-cli, the
# prepare check also re-derives .sqlx/ from a throwaway database migrated
# here and fails when it differs (a migration changed a statement's types).
# Tests get TEST_DATABASE_URL (a server where they may CREATE DATABASE) and
# TEST_REDIS_URL. QB_SKIP_LINT=1 skips fmt and clippy. The fault suite needs
# schemathesis: installed once into ~/.cache/quizbench/venv (QB_SKIP_SCHEMATHESIS=1
# skips that test). The scale-out suite needs haproxy and pgbouncer: installed with
# apt-get when missing (as root; QB_SKIP_SCALEOUT=1 skips those tests).
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

export SQLX_OFFLINE=true
# The prepare check's own database, dropped on exit.
sqlx_check_db=""
drop_sqlx_check_db() {
	if [[ -n "$sqlx_check_db" ]]; then
		DATABASE_URL="$sqlx_check_db" cargo sqlx database drop -y >/dev/null 2>&1 || true
	fi
}

qb_services_up
trap 'drop_sqlx_check_db; qb_services_release' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

run() {
	echo "==> $*" >&2
	"$@"
}

if [[ "${QB_SKIP_LINT:-0}" != 1 ]]; then
	run cargo fmt --all -- --check
	if cargo sqlx --version >/dev/null 2>&1; then
		sqlx_check_db="${TEST_DATABASE_URL%/*}/qb_sqlx_check_$$"
		run env DATABASE_URL="$sqlx_check_db" cargo sqlx database create
		run env DATABASE_URL="$sqlx_check_db" cargo sqlx migrate run
		run env DATABASE_URL="$sqlx_check_db" cargo sqlx prepare --check --workspace
		drop_sqlx_check_db
		sqlx_check_db=""
	else
		echo "==> sqlx-cli not installed: .sqlx/ is checked by the offline build only" >&2
	fi
	run cargo clippy --workspace --all-targets -- -D warnings
	# The crate pools the measured exceptions compare ours with
	# (docs/exceptions.md) must keep building.
	run cargo clippy --lib --features sqlx-pool,deadpool-redis -- -D warnings
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
# The scale-out tests (tests/scaleout) run HAProxy and PgBouncer as processes: Debian's
# packages, installed when missing and this runs as root with apt (QB_SKIP_SCALEOUT=1
# skips those tests).
if [[ "${QB_SKIP_SCALEOUT:-0}" != 1 ]]; then
	missing=()
	for tool in haproxy pgbouncer; do
		PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v "$tool" >/dev/null || missing+=("$tool")
	done
	if ((${#missing[@]})) && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
		# The packages would start system-wide services on install: a policy-rc.d
		# (the Docker-image convention) keeps them stopped; the tests run their own.
		policy=/usr/sbin/policy-rc.d own_policy=0
		if [[ ! -e "$policy" ]]; then
			printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
		fi
		export DEBIAN_FRONTEND=noninteractive
		run apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
			{ apt-get update -qq && run apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
		((own_policy == 0)) || rm -f "$policy"
	fi
fi
# The browser suite (tests/browser) drives Debian's Chromium with Playwright's
# library and checks every page with axe-core and the Nu Html Checker: npm
# packages installed into a folder outside the checkout, like the venv above.
# It also runs loadtests/locustfile.py: Locust goes into that venv.
# QB_SKIP_BROWSER=1 and QB_SKIP_LOCUST=1 skip those tests and installs.
cache="${XDG_CACHE_HOME:-$HOME/.cache}/quizbench"
if [[ "${QB_SKIP_BROWSER:-0}" != 1 ]]; then
	# Only what is missing: a Node.js from elsewhere (e.g. NodeSource, which
	# bundles npm) conflicts with Debian's npm package.
	packages=()
	[[ -x /usr/bin/chromium ]] || packages+=(chromium)
	command -v node >/dev/null || packages+=(nodejs)
	command -v npm >/dev/null || packages+=(npm)
	command -v java >/dev/null || packages+=(default-jre-headless)
	if ((${#packages[@]})); then
		run apt-get update -qq
		run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"
	fi
	modules="$cache/browser"
	if ! cmp -s tests/browser/package.json "$modules/package.json" ||
		[[ ! -d "$modules/node_modules/playwright-core" ]]; then
		mkdir -p "$modules"
		cp tests/browser/package.json "$modules/package.json"
		run npm install --prefix "$modules" --no-audit --no-fund --no-package-lock --ignore-scripts
	fi
	export QB_BROWSER_MODULES="$modules/node_modules"
fi
if [[ "${QB_SKIP_LOCUST:-0}" != 1 ]] && [[ -z "${LOCUST:-}" ]] && ! command -v locust >/dev/null; then
	if [[ ! -x "$cache/venv/bin/locust" ]]; then
		[[ -x "$cache/venv/bin/pip" ]] || run python3 -m venv "$cache/venv"
		run "$cache/venv/bin/pip" install --quiet 'locust>=2.30,<3'
	fi
	export LOCUST="$cache/venv/bin/locust"
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
