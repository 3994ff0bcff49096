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
# The browser suite (tests/browser) drives Debian's Chromium with Playwright's
# library and checks every page with axe-core and the Nu Html Checker: npm
# packages installed into a folder outside the checkout, like the venv above.
# It also runs loadtests/locustfile.py: Locust goes into that venv.
# QB_SKIP_BROWSER=1 and QB_SKIP_LOCUST=1 skip those tests and installs.
cache="${XDG_CACHE_HOME:-$HOME/.cache}/quizbench"
if [[ "${QB_SKIP_BROWSER:-0}" != 1 ]]; then
	if [[ ! -x /usr/bin/chromium ]] || ! command -v node >/dev/null || ! command -v java >/dev/null; then
		run apt-get update -qq
		run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium nodejs npm default-jre-headless
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
run cargo test --workspace "$@"
echo "==> all checks passed" >&2
