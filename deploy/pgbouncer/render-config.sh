#!/bin/sh
# deploy/pgbouncer/render-config.sh DIR — writes DIR/pgbouncer.ini and DIR/userlist.txt
# for a PgBouncer between quizbench replicas and PostgreSQL, from environment
# variables (defaults in brackets). Used by the image's entrypoint and by the
# scale-out test (tests/scaleout), so both run the same configuration.
#
#   PGBOUNCER_LISTEN_ADDR   [0.0.0.0]   PGBOUNCER_LISTEN_PORT [6432]
#   PGBOUNCER_UPSTREAM_HOST [postgres]  PGBOUNCER_UPSTREAM_PORT [5432]
#   PGBOUNCER_POOL_SIZE     [20]  server connections per database and user: keep
#                                 pool x users <= PostgreSQL's max_connections - reserved
#   PGBOUNCER_RESERVE_POOL  [0]   extra server connections for clients waiting > 5 s
#   PGBOUNCER_MAX_CLIENT_CONN [1000]  replicas x DB_POOL_MAX x PROCESSES must fit
#   PGBOUNCER_USERS         [postgres] users allowed in (trust, as the compose PostgreSQL);
#                                 the first one administers (SHOW POOLS, used by the
#                                 app's connection-budget check)
#
# Session pooling, always: sqlx keeps named prepared statements on each connection
# and quizbench sets statement_timeout per session (DB_POOLER=pgbouncer), both of
# which transaction pooling would hand to other clients (Debian's PgBouncer 1.18
# has no prepared-statement support in transaction mode). See docs/deployment.md.
set -eu
dir="${1:?usage: render-config.sh DIR}"
mkdir -p "$dir"
users="${PGBOUNCER_USERS:-postgres}"
admin="${users%%,*}"
: >"$dir/userlist.txt"
for u in $(printf '%s' "$users" | tr ',' ' '); do
	printf '"%s" ""\n' "$u" >>"$dir/userlist.txt"
done
cat >"$dir/pgbouncer.ini" <<INI
; Rendered by deploy/pgbouncer/render-config.sh; edit the environment, not this file.
[databases]
; Every database name maps to the same-named database upstream.
* = host=${PGBOUNCER_UPSTREAM_HOST:-postgres} port=${PGBOUNCER_UPSTREAM_PORT:-5432}

[pgbouncer]
listen_addr = ${PGBOUNCER_LISTEN_ADDR:-0.0.0.0}
listen_port = ${PGBOUNCER_LISTEN_PORT:-6432}
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = $admin
stats_users = $admin
pool_mode = session
default_pool_size = ${PGBOUNCER_POOL_SIZE:-20}
reserve_pool_size = ${PGBOUNCER_RESERVE_POOL:-0}
max_client_conn = ${PGBOUNCER_MAX_CLIENT_CONN:-1000}
; Session pooling resets a server connection (statement_timeout, prepared
; statements) before another client gets it.
server_reset_query = DISCARD ALL
; sqlx sends extra_float_digits at start-up; PgBouncer would refuse it.
ignore_startup_parameters = extra_float_digits
; A client waits this long for a free server connection, then gets an error.
query_wait_timeout = 30
server_idle_timeout = 300
log_connections = 0
log_disconnections = 0
log_pooler_errors = 1
stats_period = 60
INI
