#!/usr/bin/env bash
# Write the compose stack's credentials as Docker secret files, once, before `docker compose up`:
#   ./make_secrets.sh        secrets/ (or $SECRETS_DIR): random passwords and a hook token
# Kept when already there (rerun it freely; delete a file to make a new one). The database URLs
# are written again each time from .env's names (POSTGRES_DB, *_USER, POSTGRES_HOST/PORT).
# The containers read them from /run/secrets (*_FILE variables): no credential is ever an
# environment value of a container. ./setup_db.sh creates the roles with these passwords.
set -euo pipefail
cd "$(dirname "$0")"
. db_scripts/env.sh
load_env
dir=${SECRETS_DIR:-secrets}
# The folder is this user's alone; its files are readable by the containers' own non-root users
# (a file secret is bind-mounted with the host file's mode).
mkdir -p "$dir" && chmod 700 "$dir"
new() {  # new NAME: a random value of 32 letters and digits unless the file exists
  local f="$dir/$1"
  if [ ! -s "$f" ]; then
    local v
    v=$(head -c 512 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9')  # about 120 characters to take 32 from
    (umask 022; printf '%s' "${v:0:32}" >"$f")
    echo "wrote $f"
  fi
}
url() {  # url NAME USER PASSWORD_FILE
  (umask 022; printf 'postgresql://%s:%s@%s:%s/%s' "$2" "$(cat "$dir/$3")" "${POSTGRES_HOST:-postgres}" \
    "${POSTGRES_PORT:-5432}" "${POSTGRES_DB:-pokemon}" >"$dir/$1")
}
for s in postgres_password collector_db_password viewer_db_password hook_token; do new "$s"; done
url collector_database_url "${COLLECTOR_DB_USER:-collector}" collector_db_password
url viewer_database_url "${VIEWER_DB_USER:-viewer}" viewer_db_password
url owner_database_url "${POSTGRES_USER:-pokemon_owner}" postgres_password
echo "secrets in $dir/: $(cd "$dir" && echo *)"
