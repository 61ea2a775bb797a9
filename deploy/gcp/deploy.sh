#!/usr/bin/env bash
# Build and push the images to Artifact Registry, pin every image of deploy/k8s/overlays/gke by
# digest (ours as pushed, the Cloud SQL Auth Proxy's tag resolved to its digest), fill in the
# project's names, and apply. Run after setup.sh, from the repository root, with docker and kubectl
# logged in (gcloud auth configure-docker REGION-docker.pkg.dev).
#
#   PROJECT_ID=my-project HOSTNAME=pokemon.example.org deploy/gcp/deploy.sh --dry-run
#
# --dry-run prints every command on stderr and the manifests it would apply on stdout (digests
# left at zeros); nothing is built, pushed or applied.
set -euo pipefail

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "deploy.sh: unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done
: "${PROJECT_ID:?set PROJECT_ID (the Google Cloud project)}"
REGION=${REGION:-europe-west1}
HOSTNAME=${HOSTNAME:-pokemon.example.org}
CLOUDSQL_RANGE=${CLOUDSQL_RANGE:-10.100.0.0/20}
PROXY_TAG=${PROXY_TAG:-2.18.2}
if ! [[ "$PROJECT_ID" =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ && "$REGION" =~ ^[a-z]+-[a-z]+[0-9]$ ]]; then
  echo "deploy.sh: PROJECT_ID or REGION is malformed" >&2; exit 2
fi
if ! [[ "$HOSTNAME" =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$ && "$CLOUDSQL_RANGE" =~ ^[0-9./]+$ ]]; then
  echo "deploy.sh: HOSTNAME or CLOUDSQL_RANGE is malformed" >&2; exit 2
fi
cd "$(dirname "$0")/../.."
REPO="$REGION-docker.pkg.dev/$PROJECT_ID/pokemon"
ZERO=sha256:0000000000000000000000000000000000000000000000000000000000000000

run() {  # print the command (to stderr: stdout carries the manifests), then run it unless --dry-run
  { printf '+'; printf ' %q' "$@"; printf '\n'; } >&2
  if [ "$DRY_RUN" = 0 ]; then "$@"; fi
}
digest_of() {  # image:tag -> sha256:... (zeros in a dry run)
  if [ "$DRY_RUN" = 1 ]; then echo "$ZERO"; return; fi
  gcloud artifacts docker images describe "$1" --format 'value(image_summary.digest)' --project "$PROJECT_ID"
}

declare -A DIGEST
TAG=$(git rev-parse --short=12 HEAD)
run docker build -f data_collector/Dockerfile -t "$REPO/data-collector:$TAG" . >&2
run docker push "$REPO/data-collector:$TAG" >&2
DIGEST[data-collector]=$(digest_of "$REPO/data-collector:$TAG")
for model in ml_original ml_ditto ml_ditto_and_mimikyu; do
  name=${model//_/-}
  run docker build -f trained_models/model_server/Dockerfile --build-arg "MODEL=$model" -t "$REPO/$name:$TAG" . >&2
  run docker push "$REPO/$name:$TAG" >&2
  DIGEST[$name]=$(digest_of "$REPO/$name:$TAG")
done
if [ "$DRY_RUN" = 1 ]; then
  DIGEST[cloud-sql-proxy]=$ZERO
else
  DIGEST[cloud-sql-proxy]=$(gcloud container images describe \
    "gcr.io/cloud-sql-connectors/cloud-sql-proxy:$PROXY_TAG" --format 'value(image_summary.digest)')
fi

# Render, then fill in: every image's digest, the project's names.
rendered=$(kubectl kustomize deploy/k8s/overlays/gke)
for name in "${!DIGEST[@]}"; do
  [[ "${DIGEST[$name]}" =~ ^sha256:[0-9a-f]{64}$ ]] || { echo "deploy.sh: no digest for $name" >&2; exit 1; }
  rendered=$(sed -E "s#(/$name)@$ZERO#\\1@${DIGEST[$name]}#g" <<< "$rendered")
done
rendered=$(sed -e "s#PROJECT_ID#$PROJECT_ID#g" -e "s#REGION#$REGION#g" -e "s#HOSTNAME#$HOSTNAME#g" \
  -e "s#10.100.0.0/20#$CLOUDSQL_RANGE#g" <<< "$rendered")
if [ "$DRY_RUN" = 0 ] && grep -q "@$ZERO" <<< "$rendered"; then
  echo "deploy.sh: an image is still unpinned" >&2; exit 1
fi
if [ "$DRY_RUN" = 1 ]; then
  printf '+ kubectl apply --server-side -f - <<< (the manifests below)\n' >&2
  printf '%s\n' "$rendered"
else
  kubectl apply --server-side -f - <<< "$rendered"
  run kubectl -n pokemon wait --for=condition=complete job/db-setup --timeout 600s
fi
