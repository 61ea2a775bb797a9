#!/usr/bin/env bash
# Build and push the images to Artifact Registry, pin every image of deploy/k8s/overlays/gke by
# digest (ours as pushed, the Cloud SQL Auth Proxy's tag resolved to its digest), fill in the
# project's names, and apply. Run after setup.sh, from the repository root, with docker and kubectl
# logged in (gcloud auth configure-docker REGION-docker.pkg.dev).
#
#   PROJECT_ID=my-project WEB_HOST=pokemon.example.org deploy/gcp/deploy.sh --dry-run
#
# --dry-run prints every command on stderr and the manifests it would apply on stdout (digests
# left at zeros); nothing is built, pushed or applied.
set -euo pipefail

HELP_LINES=2,10
# shellcheck source=deploy/gcp/settings.sh
. "$(dirname "$0")/settings.sh"
PROXY_TAG=${PROXY_TAG:-2.18.2}
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
rendered=$(sed -e "s#PROJECT_ID#$PROJECT_ID#g" -e "s#REGION#$REGION#g" -e "s#WEB_HOST#$WEB_HOST#g" \
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
