#!/usr/bin/env bash
# Drop every table and view of the compose database (all predictions are lost).
# Asks first, unless given --yes.
set -euo pipefail
cd "$(dirname "$0")"
. db_scripts/env.sh
load_env
dir=${SECRETS_DIR:-secrets}
[ -s "$dir/owner_database_url" ] || { echo "destroy_db: no $dir/owner_database_url (./make_secrets.sh)" >&2; exit 2; }
if [ "${1:-}" != "--yes" ]; then
  read -r -p "Drop all tables in database '${POSTGRES_DB:-pokemon}'? Type 'yes': " answer
  [ "$answer" = "yes" ] || { echo "aborted"; exit 1; }
fi
# The owner's URL for this one process; the container's own DATABASE_URL_FILE (the collector's
# role, which may not drop tables) is cleared for it.
compose exec -T -e DATABASE_URL="$(cat "$dir/owner_database_url")" -e DATABASE_URL_FILE= \
  data_collector data-collector db destroy --yes
