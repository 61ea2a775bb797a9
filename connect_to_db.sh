#!/usr/bin/env bash
# Open psql on the compose database (as the owner). Try: SELECT * FROM v_class_accuracy;
set -euo pipefail
cd "$(dirname "$0")"
. db_scripts/env.sh
load_env
tty=(); [ -t 0 ] || tty=(-T)
# Inside the postgres container, over its local socket (no password).
compose exec "${tty[@]}" postgres psql -U "${POSTGRES_USER:-pokemon_owner}" -d "${POSTGRES_DB:-pokemon}" "$@"
