# shellcheck shell=bash
# Sourced by setup_db.sh, connect_to_db.sh and destroy_db.sh.
# load_env: read .env (or $ENV_FILE) without overriding variables already set in the environment.
load_env() {
  local f=${ENV_FILE:-.env} k v
  [ -f "$f" ] || return 0
  while IFS='=' read -r k v || [ -n "$k" ]; do
    [[ $k =~ ^[A-Z_][A-Z0-9_]*$ ]] || continue
    [ -n "${!k+x}" ] && continue
    v=${v%$'\r'}; v=${v#\"}; v=${v%\"}
    export "$k=$v"
  done <"$f"
}
# compose: Docker Compose v2 (`docker compose`) where installed, else v1 (`docker-compose`).
compose() {
  if docker compose version >/dev/null 2>&1; then docker compose "$@"; else docker-compose "$@"; fi
}
