#!/usr/bin/env bash
# deploy/upgrade-pgdata.sh — once, when upgrading a compose deployment made with a
# docker-compose.yml older than the `pgdata` volume (commit 7a5428b and before):
# PostgreSQL's data sits in the anonymous volume of the old postgres container, and
# the new file mounts the named volume <project>_pgdata instead. (docker-compose v1
# even keeps using the old anonymous volume when it recreates the container, with a
# warning, until the next `down` loses it.) This script stops the stack, replaces the
# postgres container by one with the named volume, and copies the data across (and
# drops the old redis container's empty anonymous volume). Then `docker compose up -d` (or docker-compose) serves
# the same data. Run it from the checkout, with the new docker-compose.yml in place,
# before the first `up` with it (an `up` first would initialise an empty database in
# the named volume: the script then refuses rather than mix two databases).
#
#   deploy/upgrade-pgdata.sh                   # the project of this checkout
#   deploy/upgrade-pgdata.sh --remove-old      # and delete the old volume after the copy
#   deploy/upgrade-pgdata.sh --from VOLUME     # after a `down`: copy from this (dangling) volume
#   COMPOSE_PROJECT_NAME=NAME deploy/upgrade-pgdata.sh    # another project name
#
# Extra compose arguments (e.g. -f FILE, -p NAME) go in QB_COMPOSE_ARGS.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

remove_old=0 from=""
while (($#)); do
	case "$1" in
	--remove-old) remove_old=1 ;;
	--from)
		from="${2:?--from needs a volume name}"
		shift
		;;
	*)
		echo "usage: $0 [--remove-old] [--from VOLUME]" >&2
		exit 2
		;;
	esac
	shift
done

say() { printf '[upgrade-pgdata] %s\n' "$*" >&2; }
qb_find_compose || {
	say "no Docker engine with compose (docker compose or docker-compose) answers"
	exit 1
}
read -r -a extra <<<"${QB_COMPOSE_ARGS:-}"
QB_COMPOSE+=("${extra[@]}")

# The data to move: the old container's anonymous volume, or --from.
old="${from:-$(qb_compose_old_pgdata)}"
if [[ -z "$old" ]]; then
	say "nothing to upgrade: the project's postgres container (if any) already uses the named volume"
	say "(after a 'down' with the old file the data is in a dangling volume: list them with"
	say " docker volume ls -f dangling=true, then run $0 --from VOLUME)"
	exit 0
fi
docker volume inspect "$old" >/dev/null
image="$("${QB_COMPOSE[@]}" config 2>/dev/null | awk '/^  postgres:/ {p=1} p && /image:/ {print $2; exit}')"
image="${image:-postgres:15}"
if ! docker run --rm -v "$old:/from:ro" --entrypoint sh "$image" -c 'test -s /from/PG_VERSION'; then
	say "error: volume $old holds no PostgreSQL data directory (no PG_VERSION)"
	exit 1
fi

say "stopping the stack (containers and volumes are kept)"
"${QB_COMPOSE[@]}" stop >&2
# The old container must go: compose (v1 at least) would otherwise carry its
# anonymous volume over to the new container and ignore the named one. Removing a
# container without -v keeps its volumes.
say "removing the old postgres container (its volume $old stays)"
"${QB_COMPOSE[@]}" rm -f postgres >&2
# The old redis container has an anonymous /data volume too, always empty (this
# Redis saves nothing); the new file mounts a tmpfs there. Remove both, or compose
# would carry the volume over and leave it behind at the next `down`.
say "removing the old redis container and its empty anonymous /data volume"
"${QB_COMPOSE[@]}" rm -f -v redis >&2
say "creating the new postgres container and its named volume (not started)"
"${QB_COMPOSE[@]}" up --no-start postgres >&2
cid="$("${QB_COMPOSE[@]}" ps -a -q postgres | head -n 1)"
new="$(docker inspect -f '{{range .Mounts}}{{if eq .Destination "/var/lib/postgresql/data"}}{{.Name}}{{end}}{{end}}' "$cid")"
if [[ -z "$new" || "$new" == "$old" ]]; then
	say "error: the postgres container does not mount a named volume (is docker-compose.yml the new one?)"
	exit 1
fi
if docker run --rm -v "$new:/to:ro" --entrypoint sh "$image" -c 'test -e /to/PG_VERSION'; then
	say "error: $new already holds a database (an 'up' ran with the new file first)."
	say "Keep the one you want: to take the old data, remove the new volume first:"
	say "  ${QB_COMPOSE[*]} rm -f -s postgres && docker volume rm $new && $0 --from $old"
	exit 1
fi
say "copying $old -> $new"
docker run --rm -v "$old:/from:ro" -v "$new:/to" --entrypoint sh "$image" -c 'cp -a /from/. /to/ && test -s /to/PG_VERSION'
if ((remove_old)); then
	say "removing the old volume $old"
	docker volume rm "$old" >/dev/null
else
	say "the old volume is kept; once the upgraded stack serves your data: docker volume rm $old"
fi
say "done: start the stack with: ${QB_COMPOSE[*]} up -d"
