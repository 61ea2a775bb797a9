#!/usr/bin/env bash
# Prepare the database: wait for it (bounded retries), run the migrations as the owner, and
# create the least-privilege role the collector uses and the web view's read-only role.
#   ./setup_db.sh           the docker compose stack (credentials from .env)
#   ./setup_db.sh --local   a PostgreSQL you run yourself (DATABASE_OWNER_URL etc. from the env)
set -euo pipefail
cd "$(dirname "$0")"
. db_scripts/env.sh
load_env

if [ "${1:-}" = "--local" ]; then
  exec python db_scripts/setup_db.py
fi
: "${POSTGRES_USER:?set it in .env (copy .env.example)}" "${POSTGRES_PASSWORD:?set it in .env}"
: "${POSTGRES_DB:?set it in .env}" "${COLLECTOR_DB_PASSWORD:?set it in .env}"
# The owner credentials go to this one process only (exec -e), never into the container config.
compose exec -T \
  -e DATABASE_OWNER_URL="postgresql://${POSTGRES_USER}:${POSTGRES_PASSWORD}@${POSTGRES_HOST:-postgres}:${POSTGRES_PORT:-5432}/${POSTGRES_DB}" \
  -e COLLECTOR_DB_USER="${COLLECTOR_DB_USER:-collector}" -e COLLECTOR_DB_PASSWORD="${COLLECTOR_DB_PASSWORD}" \
  -e VIEWER_DB_USER="${VIEWER_DB_USER:-viewer}" -e VIEWER_DB_PASSWORD="${VIEWER_DB_PASSWORD:-}" \
  data_collector python /app/db_scripts/setup_db.py
