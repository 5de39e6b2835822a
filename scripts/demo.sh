#!/usr/bin/env bash
# make demo: a fresh emulator and the twin estate; a read-only scan; then the whole loop
# (notify -> snooze click -> recheck -> remediate) in dry-run and in enforce.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/cloud-janitor/target}/debug"
source "$ROOT/scripts/emulator.sh"
POLICY="$(mktemp --suffix=.toml)"
"$BIN/testkit" policy >"$POLICY"

echo "== 1. The estate (moto at $AWS_ENDPOINT_URL): two regions, a member account, a twin per rule"
"$BIN/testkit" tables --prefix demo
"$BIN/testkit" twins --prefix demo

echo
echo "== 2. Read-only scan, as from a laptop: janitor scan"
"$BIN/janitor" scan --regions us-east-1,eu-west-1 --accounts 123456789012,222222222222 \
  --policy "$POLICY" --snooze-table demo-snooze --quiet

echo
"$BIN/testkit" loop --prefix demo
rm -f "$POLICY"

echo
echo "== 8. The audit trail of one resource: janitor audit --resource"
KEY="123456789012/us-east-1/rds-instance/db-idle"
"$BIN/janitor" audit --resource "$KEY" --audit-table demo-audit
