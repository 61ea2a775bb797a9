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
# WEB_HOST, not HOSTNAME: bash sets HOSTNAME to this machine's name, which would become the Ingress host.
WEB_HOST=${WEB_HOST:-}
CLOUDSQL_RANGE=${CLOUDSQL_RANGE:-10.100.0.0/20}
IAP_MEMBERS=${IAP_MEMBERS:-}
bad() { echo "$(basename "$0"): $1" >&2; exit 2; }
[ -n "$WEB_HOST" ] || bad "set WEB_HOST (the DNS name of the web view, e.g. pokemon.example.org)"
[[ "$PROJECT_ID" =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ ]] || bad "PROJECT_ID is not a project id: $PROJECT_ID"
[[ "$REGION" =~ ^[a-z]+-[a-z]+[0-9]$ ]] || bad "REGION is not a region: $REGION"
[[ "$WEB_HOST" =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$ ]] ||
  bad "WEB_HOST is not a fully qualified host name: $WEB_HOST"
[[ "$CLOUDSQL_RANGE" =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$ ]] || bad "CLOUDSQL_RANGE is not a CIDR range"
export DRY_RUN PROJECT_ID REGION WEB_HOST CLOUDSQL_RANGE IAP_MEMBERS
