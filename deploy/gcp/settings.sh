# shellcheck shell=bash
# Sourced by setup.sh and deploy.sh: their one option, their settings from the environment, checked.
# $1.. are the script's arguments; HELP_LINES names the lines of its header that --help prints.
DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n "${HELP_LINES}p" "$0"; exit 0 ;;
    *) echo "$(basename "$0"): unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done
: "${PROJECT_ID:?set PROJECT_ID (the Google Cloud project)}"
REGION=${REGION:-europe-west1}
HOSTNAME=${HOSTNAME:-pokemon.example.org}
CLOUDSQL_RANGE=${CLOUDSQL_RANGE:-10.100.0.0/20}
IAP_MEMBERS=${IAP_MEMBERS:-}
bad() { echo "$(basename "$0"): $1" >&2; exit 2; }
[[ "$PROJECT_ID" =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ ]] || bad "PROJECT_ID is not a project id: $PROJECT_ID"
[[ "$REGION" =~ ^[a-z]+-[a-z]+[0-9]$ ]] || bad "REGION is not a region: $REGION"
[[ "$HOSTNAME" =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$ ]] || bad "HOSTNAME is not a host name: $HOSTNAME"
[[ "$CLOUDSQL_RANGE" =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$ ]] || bad "CLOUDSQL_RANGE is not a CIDR range"
export DRY_RUN PROJECT_ID REGION HOSTNAME CLOUDSQL_RANGE IAP_MEMBERS
