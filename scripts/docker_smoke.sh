#!/usr/bin/env bash
# `make docker-smoke`: build every image and run the README's seed commands against real
# containers (host networking, distinct ports). Not part of `make test`: it takes minutes.
# Needs a Docker engine; on a machine without one, ../shared/tools/docker-local.sh (if present)
# starts one and builds stand-in base images.
set -euo pipefail
cd "$(dirname "$0")/.."
. db_scripts/env.sh
start=$(date +%s)

if ! docker info >/dev/null 2>&1; then
  if [ -x ../shared/tools/docker-local.sh ] || [ -f ../shared/tools/docker-local.sh ]; then
    bash ../shared/tools/docker-local.sh
  else
    echo "docker-smoke: no Docker engine running" >&2; exit 1
  fi
fi

# Host networking cannot publish ports: the base file without its one-line `ports:` entries
# (written next to it, so that build contexts resolve the same).
BASE=.docker-compose.smoke-base.yml
grep -v '^ *ports: \[' docker-compose.yml >"$BASE"
export COMPOSE_FILE=$BASE:docker-compose.smoke.yml COMPOSE_PROJECT_NAME=pct_smoke
export POSTGRES_HOST=127.0.0.1 POSTGRES_PORT=55432 POSTGRES_DB=pokemon_smoke POSTGRES_USER=smoke_owner
export COLLECTOR_DB_USER=smoke_collector
SECRETS_DIR=$(mktemp -d); export SECRETS_DIR  # Docker secrets of this run only
export HOOK_ALLOWED_HOSTS=127.0.0.1  # host networking: the model services are on loopback
export ENV_FILE=/nonexistent  # the scripts below must not read a developer's .env

cleanup() { compose down -v --remove-orphans >/dev/null 2>&1 || true; rm -rf "$BASE" "$SECRETS_DIR"; }
trap cleanup EXIT

echo "== ./make_secrets.sh"
./make_secrets.sh
HOOK_TOKEN=$(cat "$SECRETS_DIR/hook_token"); export HOOK_TOKEN  # for this script's own requests
echo "== build"
compose build
echo "== docker compose up -d"
compose up -d
for _ in $(seq 1 90); do
  unhealthy=$(docker ps --filter "name=pct_smoke" --format '{{.Names}} {{.Status}}' | grep -vc "(healthy)" || true)
  [ "$unhealthy" = "0" ] && [ "$(docker ps --filter name=pct_smoke -q | wc -l)" = "5" ] && break
  sleep 2
done
docker ps --filter "name=pct_smoke" --format '{{.Names}}: {{.Status}}'
for c in $(docker ps --filter name=pct_smoke --format '{{.Names}}'); do
  for s in "$SECRETS_DIR"/*; do
    if docker inspect --format '{{json .Config.Env}}' "$c" | grep -qF "$(cat "$s")"; then
      echo "docker-smoke: $c has the secret $(basename "$s") in its environment" >&2; exit 1
    fi
  done
done

# The exec line of the README, with the host-network port of each model service.
MODEL_URLS=(http://127.0.0.1:18081 http://127.0.0.1:18082 http://127.0.0.1:18083)

echo "== ./setup_db.sh"
./setup_db.sh
echo "== deploy hook (data_collector service): evaluates ml_original, writes its report"
python3 - <<'PY'
import json, os, urllib.request
req = urllib.request.Request("http://127.0.0.1:18090/hooks/deployed?wait=1", method="POST",
                             data=json.dumps({"url": "http://127.0.0.1:18081"}).encode(),
                             headers={"Content-Type": "application/json",
                                      "Authorization": f"Bearer {os.environ['HOOK_TOKEN']}"})
with urllib.request.urlopen(req, timeout=300) as r:
    body = json.load(r)
print({k: body.get(k) for k in ("name", "status", "images_sent", "verdict", "report")})
assert body.get("status") == "completed" and body.get("images_sent", 0) > 0 and body.get("report"), body
PY
compose exec -T data_collector ls -l /app/reports </dev/null
echo "== the model servers run on LiteRT, without TensorFlow in the image"
python3 - "${MODEL_URLS[@]}" <<'PY'
import json, sys, urllib.request
for url in sys.argv[1:]:
    with urllib.request.urlopen(url + "/metadata", timeout=60) as r:
        meta = json.load(r)
    print(url, meta["name"], meta["backend"], meta["fingerprint"][:12])
    assert meta["backend"] == "litert", meta
PY
if compose exec -T ml_original python -c "import tensorflow" </dev/null 2>/dev/null; then
  echo "docker-smoke: TensorFlow is installed in the model-server image" >&2; exit 1
fi
echo "== collector exec line (ml_original is already evaluated: skipped)"
compose exec -T data_collector python data_collector.py "${MODEL_URLS[@]}"
echo "== predictions in Postgres"
n=$(./connect_to_db.sh -tAc "SELECT COUNT(*) FROM predictions" </dev/null | tr -d '[:space:]')
echo "predictions: $n"
[ "$n" -gt 0 ] || { echo "docker-smoke: no predictions stored" >&2; exit 1; }
./connect_to_db.sh -c "SELECT model, label, n, accuracy FROM v_class_accuracy ORDER BY model, label" </dev/null
echo "== the web view (data_collector service, read-only role): pages, JSON and a thumbnail"
python3 - <<'PY'
import json, urllib.request
base = "http://127.0.0.1:18090"
with urllib.request.urlopen(base + "/", timeout=60) as r:
    page = r.read().decode()
assert r.status == 200 and "ml_original" in page and "ml_ditto_and_mimikyu" in page, page[:500]
with urllib.request.urlopen(base + "/api/models/ml_original", timeout=60) as r:
    model = json.load(r)
wrong = model["misclassified"]["images"]
print("ml_original:", model["report"]["accuracy"], "misclassified:", model["misclassified"]["total"])
assert wrong, model["misclassified"]
with urllib.request.urlopen(f"{base}/images/{wrong[0]['sha256']}?size=96", timeout=60) as r:
    assert r.status == 200 and r.headers["Content-Type"] == "image/png" and len(r.read()) > 100
PY
echo "== exec line again: nothing new is evaluated"
compose exec -T data_collector python data_collector.py "${MODEL_URLS[@]}" </dev/null
n2=$(./connect_to_db.sh -tAc "SELECT COUNT(*) FROM predictions" </dev/null | tr -d '[:space:]')
[ "$n2" = "$n" ] || { echo "docker-smoke: rerun changed the predictions ($n -> $n2)" >&2; exit 1; }
echo "== least privilege: the collector role cannot DELETE"
# Passes only on Postgres' own refusal; any other failure (no DB, no URL) fails the smoke.
denied=$(compose exec -T data_collector python -c "
import os, sqlalchemy as sa
url = open(os.environ['DATABASE_URL_FILE']).read().strip()
e = sa.create_engine(url.replace('postgresql://', 'postgresql+psycopg2://'))
try:
    with e.begin() as c: c.execute(sa.text('DELETE FROM predictions'))
except sa.exc.ProgrammingError as exc:
    print(type(exc.orig).__name__, str(exc.orig).strip())
else:
    print('DELETE allowed')" </dev/null)
echo "$denied"
case "$denied" in
  InsufficientPrivilege*) ;;
  *) echo "docker-smoke: expected the collector role's DELETE to be refused" >&2; exit 1 ;;
esac
echo "== containers run as non-root"
for c in $(docker ps --filter name=pct_smoke --format '{{.Names}}' | grep -v postgres); do
  u=$(docker exec "$c" id -u); echo "$c uid=$u"; [ "$u" != "0" ] || exit 1
done
echo "== ./destroy_db.sh --yes"
./destroy_db.sh --yes
echo "== docker compose down"
compose down -v --remove-orphans
trap - EXIT
echo "docker-smoke: passed in $(( $(date +%s) - start )) s"
