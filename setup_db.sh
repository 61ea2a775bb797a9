#!/usr/bin/env bash
# Prepare the database: wait for it (bounded retries), run the migrations as the owner, and
# create the least-privilege role the collector uses and the web view's read-only role.
#   ./setup_db.sh           the docker compose stack (credentials from ./make_secrets.sh's files)
#   ./setup_db.sh --local   a PostgreSQL you run yourself (DATABASE_OWNER_URL etc. from the env)
set -euo pipefail
cd "$(dirname "$0")"
. db_scripts/env.sh
load_env

if [ "${1:-}" = "--local" ]; then
  exec python db_scripts/setup_db.py
fi
dir=${SECRETS_DIR:-secrets}
for f in owner_database_url collector_db_password viewer_db_password; do
  [ -s "$dir/$f" ] || { echo "setup_db: no $dir/$f: run ./make_secrets.sh first" >&2; exit 2; }
done
# The owner's credentials go to this one process only (exec -e), never into a container's
# configuration; the collector's container has only its own role's URL (a Docker secret).
compose exec -T \
  -e DATABASE_OWNER_URL="$(cat "$dir/owner_database_url")" \
  -e COLLECTOR_DB_USER="${COLLECTOR_DB_USER:-collector}" -e COLLECTOR_DB_PASSWORD="$(cat "$dir/collector_db_password")" \
  -e VIEWER_DB_USER="${VIEWER_DB_USER:-viewer}" -e VIEWER_DB_PASSWORD="$(cat "$dir/viewer_db_password")" \
  data_collector python /app/db_scripts/setup_db.py
