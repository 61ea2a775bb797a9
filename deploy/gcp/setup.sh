#!/usr/bin/env bash
# One-time Google Cloud setup for deploy/k8s/overlays/gke: APIs, network, GKE Autopilot, Artifact
# Registry, Cloud SQL for PostgreSQL with IAM database users, Secret Manager secrets, one Google
# service account per workload with the narrowest roles, Workload Identity bindings, IAP access.
#
#   PROJECT_ID=my-project WEB_HOST=pokemon.example.org IAP_MEMBERS=group:ml-team@example.org \
#     deploy/gcp/setup.sh --dry-run     # print every command, run none (no gcloud needed)
#   ... deploy/gcp/setup.sh             # run them (gcloud logged in as a project owner)
#
# Environment: PROJECT_ID (required), REGION (default europe-west1), WEB_HOST (the web view's DNS
# name), IAP_MEMBERS (comma-separated IAM members allowed through Identity-Aware Proxy),
# CLOUDSQL_RANGE (private services range, default 10.100.0.0/20: the overlay's policies.yaml
# allows egress to it). Generated credentials (the owner's password, the hook's token) go straight
# into Secret Manager through a pipe: they are never printed and never written to a file (the
# owner's password is also handed to `gcloud sql users set-password` as its one argument).
# Idempotence: rerunning stops at the first object that exists; each step is plain gcloud, so a
# half-done setup is finished by running the remaining commands (--dry-run lists them).
set -euo pipefail

HELP_LINES=2,16
# shellcheck source=deploy/gcp/settings.sh
. "$(dirname "$0")/settings.sh"
CLUSTER=pokemon
INSTANCE=pokemon
DATABASE=pokemon
NAMESPACE=pokemon
P=(--project "$PROJECT_ID")

# Print the command (shell-quoted), then run it unless --dry-run.
run() {
  printf '+'; printf ' %q' "$@"; printf '\n'
  if [ "$DRY_RUN" = 0 ]; then "$@"; fi
}
# `run` for a command that reads a generated secret on stdin: the secret is never shown.
run_with_secret() {
  local make_secret=$1; shift
  printf '+ <%s> |' "$make_secret"; printf ' %q' "$@"; printf '\n'
  if [ "$DRY_RUN" = 0 ]; then "$make_secret" | "$@"; fi
}
random_token() { openssl rand -hex 32 | tr -d '\n'; }
OWNER_PASSWORD=
owner_password() {
  if [ -z "$OWNER_PASSWORD" ]; then OWNER_PASSWORD=$(openssl rand -base64 33 | tr -d '\n/+='); fi
  printf '%s' "$OWNER_PASSWORD"
}
owner_url() { printf 'postgresql://postgres:%s@127.0.0.1:5432/%s' "$(owner_password)" "$DATABASE"; }
iam_url() { printf 'postgresql://127.0.0.1:5432/%s' "$DATABASE"; }
set_owner_password() { gcloud sql users set-password postgres --instance "$INSTANCE" --password "$(owner_password)" "${P[@]}"; }

echo "# 1. APIs"
run gcloud services enable container.googleapis.com sqladmin.googleapis.com secretmanager.googleapis.com \
  artifactregistry.googleapis.com iap.googleapis.com servicenetworking.googleapis.com dns.googleapis.com \
  compute.googleapis.com "${P[@]}"

echo "# 2. Network: Cloud SQL on a private IP; Google APIs through Private Google Access"
run gcloud compute addresses create pokemon-sql-range --global --purpose VPC_PEERING \
  --addresses "${CLOUDSQL_RANGE%/*}" --prefix-length "${CLOUDSQL_RANGE#*/}" --network default "${P[@]}"
run gcloud services vpc-peerings connect --service servicenetworking.googleapis.com \
  --ranges pokemon-sql-range --network default "${P[@]}"
run gcloud compute networks subnets update default --region "$REGION" --enable-private-ip-google-access "${P[@]}"
run gcloud dns managed-zones create googleapis --visibility private --networks default \
  --dns-name googleapis.com. --description "Google APIs on private.googleapis.com" "${P[@]}"
run gcloud dns record-sets create private.googleapis.com. --zone googleapis --type A --ttl 300 \
  --rrdatas 199.36.153.8,199.36.153.9,199.36.153.10,199.36.153.11 "${P[@]}"
run gcloud dns record-sets create '*.googleapis.com.' --zone googleapis --type CNAME --ttl 300 \
  --rrdatas private.googleapis.com. "${P[@]}"
run gcloud compute addresses create pokemon-ip --global "${P[@]}"
run gcloud compute ssl-policies create pokemon-modern-tls --profile MODERN --min-tls-version 1.2 "${P[@]}"

echo "# 3. GKE Autopilot (Workload Identity and Dataplane V2 network policies are always on)"
run gcloud container clusters create-auto "$CLUSTER" --region "$REGION" --network default \
  --release-channel regular "${P[@]}"

echo "# 4. Artifact Registry for the images (deploy.sh pushes them and pins their digests)"
run gcloud artifacts repositories create pokemon --repository-format docker --location "$REGION" "${P[@]}"

echo "# 5. Cloud SQL for PostgreSQL: private IP only, TLS only, IAM database authentication"
run gcloud sql instances create "$INSTANCE" --database-version POSTGRES_16 --region "$REGION" \
  --tier db-custom-1-3840 --no-assign-ip --network default --ssl-mode ENCRYPTED_ONLY \
  --database-flags cloudsql.iam_authentication=on --backup --enable-point-in-time-recovery "${P[@]}"
run gcloud sql databases create "$DATABASE" --instance "$INSTANCE" "${P[@]}"
printf '+ gcloud sql users set-password postgres --instance %q --password <generated> --project %q\n' \
  "$INSTANCE" "$PROJECT_ID"
if [ "$DRY_RUN" = 0 ]; then set_owner_password; fi

echo "# 6. Secrets (values generated here, piped into Secret Manager)"
run_with_secret owner_url gcloud secrets create pokemon-owner-database-url --replication-policy automatic \
  --data-file - "${P[@]}"
run_with_secret random_token gcloud secrets create pokemon-hook-token --replication-policy automatic \
  --data-file - "${P[@]}"
# The collector's and viewer's URLs hold no user and no password: each pod's PGUSER names its IAM user.
for role in collector web; do
  run_with_secret iam_url gcloud secrets create \
    "pokemon-$role-database-url" --replication-policy automatic --data-file - "${P[@]}"
done

echo "# 7. One Google service account per workload, bound to its Kubernetes service account"
SQL_CONDITION="expression=resource.name == 'projects/$PROJECT_ID/instances/$INSTANCE' && resource.service == 'sqladmin.googleapis.com',title=pokemon-instance-only"
bind_workload() {  # GSA name, Kubernetes service account
  run gcloud iam service-accounts add-iam-policy-binding "$1@$PROJECT_ID.iam.gserviceaccount.com" \
    --role roles/iam.workloadIdentityUser \
    --member "serviceAccount:$PROJECT_ID.svc.id.goog[$NAMESPACE/$2]" "${P[@]}"
}
for sa in pokemon-gate pokemon-nightly pokemon-sharded pokemon-web pokemon-db-setup \
          pokemon-secrets-collector pokemon-secrets-web pokemon-secrets-setup; do
  run gcloud iam service-accounts create "$sa" --display-name "$sa (pokemon-classifier-tester)" "${P[@]}"
  bind_workload "$sa" "$sa"
done
# Database workloads: connect through the proxy (cloudsql.client) to this instance only.
for sa in pokemon-gate pokemon-nightly pokemon-sharded pokemon-web pokemon-db-setup; do
  run gcloud projects add-iam-policy-binding "$PROJECT_ID" --role roles/cloudsql.client \
    --member "serviceAccount:$sa@$PROJECT_ID.iam.gserviceaccount.com" --condition "$SQL_CONDITION"
done
# IAM database users: log in with the service account's token (cloudsql.instanceUser), no password.
for sa in pokemon-gate pokemon-nightly pokemon-sharded pokemon-web; do
  run gcloud projects add-iam-policy-binding "$PROJECT_ID" --role roles/cloudsql.instanceUser \
    --member "serviceAccount:$sa@$PROJECT_ID.iam.gserviceaccount.com" --condition "$SQL_CONDITION"
  run gcloud sql users create "$sa@$PROJECT_ID.iam" --instance "$INSTANCE" \
    --type cloud_iam_service_account "${P[@]}"
done
# Secret readers (the External Secrets Operator's identities): each reads only its role's secrets.
grant_secret() {  # secret, GSA name
  run gcloud secrets add-iam-policy-binding "$1" --role roles/secretmanager.secretAccessor \
    --member "serviceAccount:$2@$PROJECT_ID.iam.gserviceaccount.com" "${P[@]}"
}
grant_secret pokemon-collector-database-url pokemon-secrets-collector
grant_secret pokemon-hook-token pokemon-secrets-collector
grant_secret pokemon-web-database-url pokemon-secrets-web
grant_secret pokemon-owner-database-url pokemon-secrets-setup

echo "# 8. Identity-Aware Proxy: who may open the web view"
if [ -z "$IAP_MEMBERS" ]; then
  echo "$(basename "$0"): warning: IAP_MEMBERS is empty: nobody is let through Identity-Aware Proxy, so the" \
    "web view answers no one; set IAP_MEMBERS=group:you@example.org (or grant later with the command above)" >&2
fi
IFS=',' read -r -a members <<< "$IAP_MEMBERS"
for m in "${members[@]}"; do
  run gcloud iap web add-iam-policy-binding --role roles/iap.httpsResourceAccessor --member "$m" "${P[@]}"
done

echo "# 9. The External Secrets Operator in the cluster"
run gcloud container clusters get-credentials "$CLUSTER" --region "$REGION" "${P[@]}"
run helm upgrade --install external-secrets external-secrets --repo https://charts.external-secrets.io \
  --namespace external-secrets --create-namespace --version 0.20.4 --wait

echo "# Done. Next: deploy/gcp/deploy.sh (builds, pushes, pins digests, applies the overlay)."
echo "# WEB_HOST $WEB_HOST must resolve to: gcloud compute addresses describe pokemon-ip --global --format 'value(address)'"
