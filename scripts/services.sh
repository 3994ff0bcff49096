#!/usr/bin/env bash
# scripts/services.sh — make PostgreSQL and Redis available to quizbench.
#
# Sourced by scripts/serve.sh and scripts/test.sh (they call qb_services_up,
# then qb_services_release on exit), or run alone:
#
#   scripts/services.sh up       bring both up; prints `export ...` lines, so
#                                `eval "$(scripts/services.sh up)"` sets the URLs
#   scripts/services.sh down     stop what `up` (or a killed serve/test run) started
#   scripts/services.sh status   say what answers where
#
# Order of preference, per service (PostgreSQL and Redis independently):
#   1. the configured one (DATABASE_URL / REDIS_URL, or the defaults) if it answers;
#   2. an instance this checkout started earlier and recorded under .run/;
#   3. the `postgres` / `redis` services of docker-compose.yml, if a Docker engine runs;
#   4. a throwaway instance started from the locally installed binaries, under .run/
#      (as root, PostgreSQL runs as the `postgres` system user with its data in /tmp).
# Exports DATABASE_URL, REDIS_URL, TEST_DATABASE_URL and TEST_REDIS_URL accordingly.
#
# Knobs: QB_SERVICES=auto|docker|local (default auto; `local` skips steps 1-3 and
# always starts throwaway instances), POSTGRES_MAX_CONNECTIONS (default 100),
# POSTGRES_PORT / REDIS_PORT (host ports of the compose services, 15432 / 16379).

set -euo pipefail

QB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
QB_RUN_DIR="$QB_ROOT/.run"
QB_DEFAULT_DATABASE_URL="postgres://postgres@127.0.0.1:5432/quizbench"
QB_DEFAULT_REDIS_URL="redis://127.0.0.1:6379/0"
# What this shell started (and so stops in qb_services_release).
QB_OWNED=()

qb_log() { printf '[services] %s\n' "$*" >&2; }
qb_die() {
	qb_log "error: $*"
	return 1
}

# --- URL helpers ---------------------------------------------------------------

# qb_url_parts URL DEFAULT_PORT -> sets QB_U_HOST, QB_U_PORT, QB_U_PATH (no query).
qb_url_parts() {
	local url="$1" def_port="$2" rest hostport
	rest="${url#*://}"
	hostport="${rest%%/*}"
	hostport="${hostport%%\?*}"
	hostport="${hostport##*@}"
	if [[ "$rest" == */* ]]; then
		QB_U_PATH="/${rest#*/}"
		QB_U_PATH="${QB_U_PATH%%\?*}"
	else
		QB_U_PATH=""
	fi
	if [[ "$hostport" =~ ^\[([^]]*)\](:([0-9]+))?$ ]]; then
		QB_U_HOST="${BASH_REMATCH[1]}"
		QB_U_PORT="${BASH_REMATCH[3]:-$def_port}"
	elif [[ "$hostport" =~ ^([^:]*)(:([0-9]+))?$ ]]; then
		QB_U_HOST="${BASH_REMATCH[1]}"
		QB_U_PORT="${BASH_REMATCH[3]:-$def_port}"
	else
		QB_U_HOST="$hostport"
		QB_U_PORT="$def_port"
	fi
	[[ -n "$QB_U_HOST" ]] || QB_U_HOST=127.0.0.1
}

# The database name in DATABASE_URL (default quizbench).
qb_db_name() {
	qb_url_parts "$1" 5432
	local name="${QB_U_PATH#/}"
	printf '%s\n' "${name:-quizbench}"
}

# TEST_DATABASE_URL for a server: same server, database `postgres`.
qb_admin_url() {
	local url="$1" base
	base="${url%%\?*}"
	base="${base#*://}"
	base="${base%%/*}"
	printf 'postgres://%s/postgres\n' "$base"
}

# --- probes --------------------------------------------------------------------

qb_tcp_open() { # HOST PORT: something accepts TCP connections there
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

qb_pid_alive() { # PID: the process exists and is not a zombie
	local stat
	kill -0 "$1" 2>/dev/null || return 1
	IFS= read -r stat <"/proc/$1/stat" 2>/dev/null || return 0
	stat="${stat##*) }"
	[[ "${stat%% *}" != Z ]]
}

qb_port_free() { # PORT on 127.0.0.1: nobody listens
	local port="$1"
	if qb_tcp_open 127.0.0.1 "$port"; then return 1; fi
	if command -v ss >/dev/null 2>&1 && ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
		return 1
	fi
	return 0
}

qb_free_port() { # FIRST: print the first free port from FIRST on
	local port="$1"
	while ((port < 65000)); do
		if qb_port_free "$port"; then
			printf '%s\n' "$port"
			return 0
		fi
		port=$((port + 1))
	done
	qb_die "no free TCP port found from $1 on"
}

qb_pg_answers() { # URL
	local url="$1"
	if command -v pg_isready >/dev/null 2>&1; then
		pg_isready -q -t 3 -d "$url" >/dev/null 2>&1
	elif command -v psql >/dev/null 2>&1; then
		# Any reply from the server, even "database does not exist", means it is up.
		local out
		out="$(PGCONNECT_TIMEOUT=3 psql "$url" -Atqc 'select 1' 2>&1 </dev/null)" && return 0
		[[ "$out" == *"does not exist"* || "$out" == *"authentication"* ]]
	else
		qb_url_parts "$url" 5432
		qb_tcp_open "$QB_U_HOST" "$QB_U_PORT"
	fi
}

qb_redis_answers() { # URL
	local url="$1"
	if command -v redis-cli >/dev/null 2>&1; then
		[[ "$(timeout 3 redis-cli -u "$url" ping 2>/dev/null </dev/null)" == PONG ]]
	else
		qb_url_parts "$url" 6379
		# shellcheck disable=SC2016
		timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1
			printf "PING\r\n" >&3
			IFS= read -r line <&3 || exit 1
			[[ "$line" == +PONG* || "$line" == -NOAUTH* ]]' _ "$QB_U_HOST" "$QB_U_PORT" 2>/dev/null
	fi
}

# --- recorded state (.run/*.state) ---------------------------------------------

qb_state_file() { printf '%s/%s.state\n' "$QB_RUN_DIR" "$1"; }

qb_state_write() { # NAME KEY=VALUE...
	local file kv
	file="$(qb_state_file "$1")"
	shift
	mkdir -p "$QB_RUN_DIR"
	: >"$file.tmp"
	for kv in "$@"; do
		printf '%s=%q\n' "${kv%%=*}" "${kv#*=}" >>"$file.tmp"
	done
	mv "$file.tmp" "$file"
}

qb_state_load() { # NAME: source the state file into the current shell
	local file
	file="$(qb_state_file "$1")"
	[[ -f "$file" ]] || return 1
	# shellcheck disable=SC1090
	source "$file"
}

# qb_recorded_answers postgres|redis: true when .run/ records a throwaway
# instance this checkout started and it still answers (its port is then in
# QB_PG_PORT / QB_REDIS_PORT); a stale one is cleaned up.
qb_recorded_answers() {
	local kind="$1" port url
	qb_state_load "$kind" || return 1
	if [[ "$kind" == postgres ]]; then
		port="$QB_PG_PORT" url="postgres://postgres@127.0.0.1:$QB_PG_PORT/postgres"
	else
		port="$QB_REDIS_PORT" url="redis://127.0.0.1:$QB_REDIS_PORT"
	fi
	if { [[ "$kind" == postgres ]] && qb_pg_answers "$url"; } ||
		{ [[ "$kind" == redis ]] && qb_redis_answers "$url"; }; then
		qb_log "using the throwaway $kind recorded in .run/ (127.0.0.1:$port)"
		return 0
	fi
	if [[ "$kind" == postgres ]]; then qb_local_pg_stop; else qb_local_redis_stop; fi
	return 1
}

# --- running a command as the PostgreSQL OS user ----------------------------

qb_as_user() { # USER CMD...
	local user="$1"
	shift
	if [[ "$user" == "$(id -un)" ]]; then
		"$@"
	elif command -v runuser >/dev/null 2>&1; then
		runuser -u "$user" -- "$@"
	else
		su -s /bin/bash "$user" -c "$(printf '%q ' "$@")"
	fi
}

qb_find_pg_bin() { # print a directory holding initdb, pg_ctl and postgres
	local dir candidates=()
	if command -v pg_ctl >/dev/null 2>&1; then
		candidates+=("$(dirname "$(readlink -f "$(command -v pg_ctl)")")")
	fi
	if compgen -G '/usr/lib/postgresql/*/bin' >/dev/null; then
		while IFS= read -r dir; do candidates+=("$dir"); done \
			< <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
	fi
	candidates+=(/usr/local/pgsql/bin /usr/pgsql-*/bin)
	for dir in "${candidates[@]}"; do
		if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
			printf '%s\n' "$dir"
			return 0
		fi
	done
	return 1
}

# --- throwaway local PostgreSQL ---------------------------------------------

qb_local_pg_start() { # PREFERRED_PORT DBNAME
	local want_port="$1" dbname="$2" bin port base data sock osuser
	bin="$(qb_find_pg_bin)" || return 1
	if qb_port_free "$want_port"; then port="$want_port"; else port="$(qb_free_port 55432)"; fi
	mkdir -p "$QB_RUN_DIR"
	if [[ "$(id -u)" == 0 ]]; then
		# initdb and postgres refuse to run as root: run them as an unprivileged
		# user, in a directory that user owns (the repo may not be readable to it).
		if id postgres >/dev/null 2>&1; then osuser=postgres; else osuser=nobody; fi
		base="$(mktemp -d /tmp/quizbench-pg.XXXXXX)"
		chown "$osuser" "$base"
	else
		osuser="$(id -un)"
		base="$QB_RUN_DIR/pg"
		rm -rf "$base"
		mkdir -p "$base"
	fi
	data="$base/data"
	sock="$base/sock"
	if ((${#sock} > 80)); then # unix socket paths are limited to ~107 bytes
		sock="$(mktemp -d /tmp/quizbench-pgsock.XXXXXX)"
		chown "$osuser" "$sock"
	fi
	qb_as_user "$osuser" mkdir -p "$sock"
	qb_state_write postgres "QB_PG_PORT=$port" "QB_PG_BASE=$base" "QB_PG_SOCK=$sock" \
		"QB_PG_BIN=$bin" "QB_PG_OSUSER=$osuser" "QB_PG_DB=$dbname"
	qb_log "starting a throwaway PostgreSQL ($bin) on 127.0.0.1:$port, data in $data"
	if ! (cd "$base" && qb_as_user "$osuser" "$bin/initdb" -D "$data" -U postgres -A trust \
		-E UTF8 --locale=C --no-sync >"$base/initdb.log" 2>&1); then
		qb_log "initdb failed; its output:"
		cat "$base/initdb.log" >&2
		return 1
	fi
	cat >>"$data/postgresql.conf" <<EOF

# quizbench throwaway instance (scripts/services.sh)
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sock'
max_connections = ${POSTGRES_MAX_CONNECTIONS:-100}
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
	if ! (cd "$base" && qb_as_user "$osuser" "$bin/pg_ctl" -D "$data" -l "$base/postgres.log" \
		-w -t 60 start >/dev/null); then
		qb_log "PostgreSQL did not start; $base/postgres.log says:"
		tail -n 20 "$base/postgres.log" >&2 || true
		return 1
	fi
	QB_PG_PORT="$port"
	qb_pg_answers "postgres://postgres@127.0.0.1:$port/postgres" ||
		qb_die "the throwaway PostgreSQL started but does not answer"
}

qb_local_pg_stop() { # uses the recorded state
	qb_state_load postgres || return 0
	if [[ -d "${QB_PG_BASE:-}/data" ]]; then
		qb_log "stopping the throwaway PostgreSQL on 127.0.0.1:$QB_PG_PORT"
		(cd "$QB_PG_BASE" && qb_as_user "$QB_PG_OSUSER" "$QB_PG_BIN/pg_ctl" -D "$QB_PG_BASE/data" \
			-m fast -w -t 60 stop >/dev/null 2>&1) || true
	fi
	case "${QB_PG_BASE:-}" in
	/tmp/quizbench-pg.* | "$QB_RUN_DIR"/pg) rm -rf "$QB_PG_BASE" ;;
	esac
	case "${QB_PG_SOCK:-}" in
	/tmp/quizbench-pgsock.*) rm -rf "$QB_PG_SOCK" ;;
	esac
	rm -f "$(qb_state_file postgres)"
}

# --- throwaway local Redis ---------------------------------------------------

qb_local_redis_start() { # PREFERRED_PORT
	local want_port="$1" port conf pidfile
	command -v redis-server >/dev/null 2>&1 || return 1
	if qb_port_free "$want_port"; then port="$want_port"; else port="$(qb_free_port 56379)"; fi
	mkdir -p "$QB_RUN_DIR/redis"
	conf="$QB_RUN_DIR/redis/redis.conf"
	pidfile="$QB_RUN_DIR/redis/redis.pid"
	rm -f "$pidfile"
	cat >"$conf" <<EOF
# quizbench throwaway instance (scripts/services.sh)
port $port
bind 127.0.0.1
save ""
appendonly no
daemonize yes
pidfile "$pidfile"
logfile "$QB_RUN_DIR/redis/redis.log"
dir "$QB_RUN_DIR/redis"
EOF
	qb_state_write redis "QB_REDIS_PORT=$port" "QB_REDIS_PIDFILE=$pidfile"
	qb_log "starting a throwaway Redis ($(command -v redis-server)) on 127.0.0.1:$port"
	redis-server "$conf" >/dev/null || return 1
	local i
	for ((i = 0; i < 50; i++)); do
		if qb_redis_answers "redis://127.0.0.1:$port"; then
			QB_REDIS_PORT="$port"
			return 0
		fi
		sleep 0.2
	done
	qb_log "Redis did not answer; $QB_RUN_DIR/redis/redis.log says:"
	tail -n 20 "$QB_RUN_DIR/redis/redis.log" >&2 || true
	return 1
}

qb_local_redis_stop() {
	qb_state_load redis || return 0
	local pid=""
	[[ -f "${QB_REDIS_PIDFILE:-}" ]] && pid="$(cat "$QB_REDIS_PIDFILE")"
	# Only ever signal the redis-server we started: check the pid is one.
	if [[ -n "$pid" ]] && grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null; then
		qb_log "stopping the throwaway Redis on 127.0.0.1:$QB_REDIS_PORT"
		kill -TERM "$pid" 2>/dev/null || true
		local i
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	rm -rf "$QB_RUN_DIR/redis"
	rm -f "$(qb_state_file redis)"
}

# --- Docker Compose ------------------------------------------------------------

QB_COMPOSE=()
QB_COMPOSE_BIN=()
# Sets QB_COMPOSE_BIN (`docker compose` v2, else `docker-compose` v1) and QB_COMPOSE
# (the same with this checkout's docker-compose.yml) if a Docker engine and compose
# are usable.
qb_find_compose() {
	command -v docker >/dev/null 2>&1 || return 1
	timeout 10 docker info >/dev/null 2>&1 || return 1
	if docker compose version >/dev/null 2>&1; then
		QB_COMPOSE_BIN=(docker compose)
	elif command -v docker-compose >/dev/null 2>&1; then
		QB_COMPOSE_BIN=(docker-compose)
	else
		return 1
	fi
	QB_COMPOSE=("${QB_COMPOSE_BIN[@]}" -f "$QB_ROOT/docker-compose.yml")
}

# The anonymous volume holding PostgreSQL's data when the project's postgres
# container was created by a compose file older than the `pgdata` volume
# (commit 7a5428b and before); prints nothing otherwise. Needs QB_COMPOSE.
qb_compose_old_pgdata() {
	local cid
	cid="$("${QB_COMPOSE[@]}" ps -a -q postgres 2>/dev/null | head -n 1)"
	[[ -n "$cid" ]] || return 0
	docker inspect -f '{{range .Mounts}}{{if eq .Destination "/var/lib/postgresql/data"}}{{.Type}} {{.Name}}{{"\n"}}{{end}}{{end}}' "$cid" 2>/dev/null |
		awk '$1 == "volume" && $2 ~ /^[0-9a-f]{64}$/ {print $2}'
}

# Refuses (returns 1) while the data sits in such an old anonymous volume.
qb_compose_check_pgdata() {
	local old
	old="$(qb_compose_old_pgdata)"
	[[ -z "$old" ]] && return 0
	qb_log "error: PostgreSQL's data is in the anonymous volume $old, created by an older"
	qb_log "docker-compose.yml; starting this one would show an empty database. Move the data"
	qb_log "into the named volume first (once): $QB_ROOT/deploy/upgrade-pgdata.sh"
	qb_log "(docs/deployment.md, Upgrading)."
	return 1
}

qb_compose_wait_healthy() { # SERVICE...
	local svc id status i
	for svc in "$@"; do
		for ((i = 0; i < 120; i++)); do
			id="$("${QB_COMPOSE[@]}" ps -q "$svc" 2>/dev/null || true)"
			status=""
			[[ -n "$id" ]] && status="$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null || true)"
			[[ "$status" == healthy ]] && break
			sleep 1
		done
		[[ "$status" == healthy ]] || qb_die "compose service $svc is not healthy (status: ${status:-none})" || return 1
	done
}

qb_docker_start() { # SERVICE... (postgres and/or redis)
	qb_find_compose || return 1
	qb_compose_check_pgdata || return 1
	qb_log "starting ${*} with: ${QB_COMPOSE[*]} up -d ${*}"
	export POSTGRES_PORT="${POSTGRES_PORT:-15432}" REDIS_PORT="${REDIS_PORT:-16379}"
	"${QB_COMPOSE[@]}" up -d "$@" >&2 || return 1
	qb_compose_wait_healthy "$@" || return 1
	local prev=""
	if qb_state_load docker; then prev="${QB_DOCKER_SERVICES:-}"; fi
	# shellcheck disable=SC2086 # $prev is a space-separated list on purpose
	qb_state_write docker "QB_DOCKER_SERVICES=$(printf '%s\n' $prev "$@" | sort -u | xargs)" \
		"QB_DOCKER_COMPOSE=${QB_COMPOSE[*]}" "QB_DOCKER_PG_PORT=$POSTGRES_PORT" \
		"QB_DOCKER_REDIS_PORT=$REDIS_PORT"
}

qb_docker_stop() { # SERVICE... (default: all recorded)
	qb_state_load docker || return 0
	local svcs=("$@") keep=() s
	((${#svcs[@]})) || read -r -a svcs <<<"${QB_DOCKER_SERVICES:-}"
	((${#svcs[@]})) || return 0
	qb_find_compose || {
		qb_log "cannot reach Docker to stop ${svcs[*]}"
		return 0
	}
	qb_log "stopping compose services: ${svcs[*]}"
	"${QB_COMPOSE[@]}" stop "${svcs[@]}" >&2 || true
	for s in ${QB_DOCKER_SERVICES:-}; do
		[[ " ${svcs[*]} " == *" $s "* ]] || keep+=("$s")
	done
	if ((${#keep[@]})); then
		qb_state_write docker "QB_DOCKER_SERVICES=${keep[*]}" "QB_DOCKER_COMPOSE=${QB_DOCKER_COMPOSE:-}" \
			"QB_DOCKER_PG_PORT=${QB_DOCKER_PG_PORT:-}" "QB_DOCKER_REDIS_PORT=${QB_DOCKER_REDIS_PORT:-}"
	else
		rm -f "$(qb_state_file docker)"
	fi
}

# --- the bootstrap -------------------------------------------------------------

qb_missing_help() {
	qb_log "cannot find or start $1."
	qb_log "Install PostgreSQL and Redis (Debian/Ubuntu: sudo apt-get install postgresql redis-server),"
	qb_log "or Docker with the compose plugin, or point DATABASE_URL / REDIS_URL at running servers."
}

# Bring PostgreSQL and Redis up; export the four URLs.
qb_services_up() {
	local mode="${QB_SERVICES:-auto}" pg_url redis_url dbname pg_ok=0 redis_ok=0
	case "$mode" in auto | docker | local) ;; *) qb_die "QB_SERVICES must be auto, docker or local (got '$mode')" || return 1 ;; esac
	pg_url="${DATABASE_URL:-$QB_DEFAULT_DATABASE_URL}"
	redis_url="${REDIS_URL:-$QB_DEFAULT_REDIS_URL}"
	dbname="$(qb_db_name "$pg_url")"

	# 1. What is configured, if it answers.
	if [[ "$mode" == auto ]]; then
		if qb_pg_answers "$pg_url"; then pg_ok=1; fi
		if qb_redis_answers "$redis_url"; then redis_ok=1; fi
	fi

	# 2. What this checkout started before, if it still answers.
	if ((!pg_ok)) && qb_recorded_answers postgres; then
		pg_url="postgres://postgres@127.0.0.1:$QB_PG_PORT/$dbname" pg_ok=1
	fi
	if ((!redis_ok)) && qb_recorded_answers redis; then
		redis_url="redis://127.0.0.1:$QB_REDIS_PORT/0" redis_ok=1
	fi
	if ((!pg_ok || !redis_ok)) && [[ "$mode" != local ]] && qb_state_load docker; then
		if ((!pg_ok)) && [[ " ${QB_DOCKER_SERVICES:-} " == *" postgres "* ]] &&
			qb_pg_answers "postgres://postgres@127.0.0.1:$QB_DOCKER_PG_PORT/postgres"; then
			pg_url="postgres://postgres@127.0.0.1:$QB_DOCKER_PG_PORT/$dbname"
			pg_ok=1
		fi
		if ((!redis_ok)) && [[ " ${QB_DOCKER_SERVICES:-} " == *" redis "* ]] &&
			qb_redis_answers "redis://127.0.0.1:$QB_DOCKER_REDIS_PORT"; then
			redis_url="redis://127.0.0.1:$QB_DOCKER_REDIS_PORT/0"
			redis_ok=1
		fi
	fi

	# 3. Docker Compose.
	if ((!pg_ok || !redis_ok)) && [[ "$mode" != local ]]; then
		local want=()
		((pg_ok)) || want+=(postgres)
		((redis_ok)) || want+=(redis)
		if qb_docker_start "${want[@]}"; then
			local s
			for s in "${want[@]}"; do QB_OWNED+=("docker:$s"); done
			if ((!pg_ok)); then
				pg_url="postgres://postgres@127.0.0.1:$POSTGRES_PORT/$dbname"
				pg_ok=1
			fi
			if ((!redis_ok)); then
				redis_url="redis://127.0.0.1:$REDIS_PORT/0"
				redis_ok=1
			fi
		elif [[ "$mode" == docker ]]; then
			qb_die "QB_SERVICES=docker, but no Docker engine with compose could start ${want[*]}" || return 1
		elif ((${#QB_COMPOSE[@]})); then
			qb_log "Docker Compose could not start ${want[*]}; trying local binaries"
		fi
	fi

	# 4. Throwaway instances from local binaries.
	if ((!pg_ok)); then
		qb_url_parts "$pg_url" 5432
		if ! qb_find_pg_bin >/dev/null; then
			qb_missing_help "PostgreSQL (nothing answers at $QB_U_HOST:$QB_U_PORT, no Docker engine, no initdb/pg_ctl/postgres binaries)"
			return 1
		fi
		if [[ "$mode" == local ]]; then QB_U_PORT=55432; fi
		qb_local_pg_start "$QB_U_PORT" "$dbname" || {
			qb_local_pg_stop
			qb_die "could not start a throwaway PostgreSQL" || return 1
		}
		QB_OWNED+=(local:postgres)
		pg_url="postgres://postgres@127.0.0.1:$QB_PG_PORT/$dbname"
	fi
	if ((!redis_ok)); then
		qb_url_parts "$redis_url" 6379
		if ! command -v redis-server >/dev/null 2>&1; then
			qb_missing_help "Redis (nothing answers at $QB_U_HOST:$QB_U_PORT, no Docker engine, no redis-server binary)"
			qb_services_release
			return 1
		fi
		if [[ "$mode" == local ]]; then QB_U_PORT=56379; fi
		qb_local_redis_start "$QB_U_PORT" || {
			qb_local_redis_stop
			qb_services_release
			qb_die "could not start a throwaway Redis" || return 1
		}
		QB_OWNED+=(local:redis)
		redis_url="redis://127.0.0.1:$QB_REDIS_PORT/0"
	fi

	# Tests need an admin URL on the same server (CREATE DATABASE) and a bare Redis
	# URL: keep the caller's TEST_* only when the server they name is the one in use.
	if [[ -z "${TEST_DATABASE_URL:-}" || "$pg_url" != "${DATABASE_URL:-$QB_DEFAULT_DATABASE_URL}" ]]; then
		TEST_DATABASE_URL="$(qb_admin_url "$pg_url")"
	fi
	if [[ -z "${TEST_REDIS_URL:-}" || "$redis_url" != "${REDIS_URL:-$QB_DEFAULT_REDIS_URL}" ]]; then
		TEST_REDIS_URL="$redis_url"
		if [[ "$redis_url" =~ ^(redis://[^/]+)/[0-9]+$ ]]; then TEST_REDIS_URL="${BASH_REMATCH[1]}"; fi
	fi
	export DATABASE_URL="$pg_url" REDIS_URL="$redis_url" TEST_DATABASE_URL TEST_REDIS_URL
	qb_log "PostgreSQL: $DATABASE_URL"
	qb_log "Redis:      $REDIS_URL"
}

# Stop what this shell started (safe to call more than once).
qb_services_release() {
	local item docker_svcs=()
	((${#QB_OWNED[@]})) || return 0
	for item in "${QB_OWNED[@]}"; do
		case "$item" in
		local:postgres) qb_local_pg_stop ;;
		local:redis) qb_local_redis_stop ;;
		docker:*) docker_svcs+=("${item#docker:}") ;;
		esac
	done
	((${#docker_svcs[@]} == 0)) || qb_docker_stop "${docker_svcs[@]}"
	QB_OWNED=()
}

# Stop everything recorded under .run/ (throwaway instances and compose services).
qb_services_down() {
	qb_local_pg_stop
	qb_local_redis_stop
	qb_docker_stop
	QB_OWNED=()
}

qb_services_status() {
	local pg_url="${DATABASE_URL:-$QB_DEFAULT_DATABASE_URL}" redis_url="${REDIS_URL:-$QB_DEFAULT_REDIS_URL}"
	if qb_pg_answers "$pg_url"; then echo "postgres  configured  $pg_url  answers"; else echo "postgres  configured  $pg_url  no answer"; fi
	if qb_redis_answers "$redis_url"; then echo "redis     configured  $redis_url  answers"; else echo "redis     configured  $redis_url  no answer"; fi
	if qb_state_load postgres; then
		if qb_pg_answers "postgres://postgres@127.0.0.1:$QB_PG_PORT/postgres"; then
			echo "postgres  throwaway   127.0.0.1:$QB_PG_PORT (data $QB_PG_BASE/data)  answers"
		else echo "postgres  throwaway   127.0.0.1:$QB_PG_PORT  recorded but not answering"; fi
	fi
	if qb_state_load redis; then
		if qb_redis_answers "redis://127.0.0.1:$QB_REDIS_PORT"; then
			echo "redis     throwaway   127.0.0.1:$QB_REDIS_PORT  answers"
		else echo "redis     throwaway   127.0.0.1:$QB_REDIS_PORT  recorded but not answering"; fi
	fi
	if qb_state_load docker; then
		echo "compose   started     ${QB_DOCKER_SERVICES:-} (postgres port ${QB_DOCKER_PG_PORT:-?}, redis port ${QB_DOCKER_REDIS_PORT:-?})"
	fi
}

# --- run alone -----------------------------------------------------------------

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	case "${1:-}" in
	up)
		qb_services_up
		printf 'export DATABASE_URL=%q\nexport REDIS_URL=%q\nexport TEST_DATABASE_URL=%q\nexport TEST_REDIS_URL=%q\n' \
			"$DATABASE_URL" "$REDIS_URL" "$TEST_DATABASE_URL" "$TEST_REDIS_URL"
		((${#QB_OWNED[@]} == 0)) || qb_log "started: ${QB_OWNED[*]} (stop with: scripts/services.sh down)"
		;;
	down) qb_services_down ;;
	status) qb_services_status ;;
	*)
		echo "usage: $0 up|down|status" >&2
		exit 2
		;;
	esac
fi
