#!/usr/bin/env bash
# Open psql on the compose database (as the owner). Try: SELECT * FROM v_class_accuracy;
set -euo pipefail
cd "$(dirname "$0")"
. db_scripts/env.sh
load_env
: "${POSTGRES_USER:?set it in .env (copy .env.example)}" "${POSTGRES_DB:?set it in .env}"
tty=(); [ -t 0 ] || tty=(-T)
compose exec "${tty[@]}" postgres psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" "$@"
