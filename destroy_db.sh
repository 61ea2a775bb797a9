#!/usr/bin/env bash
# Drop every table and view of the compose database (all predictions are lost).
# Asks first, unless given --yes.
set -euo pipefail
cd "$(dirname "$0")"
. db_scripts/env.sh
load_env
: "${POSTGRES_USER:?set it in .env (copy .env.example)}" "${POSTGRES_PASSWORD:?set it in .env}"
: "${POSTGRES_DB:?set it in .env}"
if [ "${1:-}" != "--yes" ]; then
  read -r -p "Drop all tables in database '${POSTGRES_DB}'? Type 'yes': " answer
  [ "$answer" = "yes" ] || { echo "aborted"; exit 1; }
fi
compose exec -T \
  -e DATABASE_URL="postgresql://${POSTGRES_USER}:${POSTGRES_PASSWORD}@${POSTGRES_HOST:-postgres}:${POSTGRES_PORT:-5432}/${POSTGRES_DB}" \
  data_collector data-collector db destroy --yes
