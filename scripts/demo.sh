#!/usr/bin/env bash
# make demo: a fresh emulator and the twin estate; a read-only scan; then the shipped state
# machine run locally (every step the real handler binary) in dry-run, a snooze click through
# the real snooze function, the same state machine in enforce, and the audit trail.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/cloud-janitor/target}/debug"
SERVICE_CATALOG_TWINS=1 source "$ROOT/scripts/emulator.sh"
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
WORK="$ROOT/.demo"
rm -rf "$WORK"
"$BIN/testkit" pipeline --prefix demo --work "$WORK"
rm -f "$POLICY"

echo
echo "== 7. The audit trail of one resource across both runs: janitor audit --resource"
KEY="123456789012/us-east-1/rds-instance/db-idle"
"$BIN/janitor" audit --resource "$KEY" --audit-table demo-audit
echo "   (janitor audit --run demo-enforce --output csv gives the whole run; handler logs: .demo/handlers.log)"

echo
echo "== 8. The report page of the enforce run: janitor report"
REPORT="$WORK/report.html"
"$BIN/janitor" report --run demo-enforce --audit-table demo-audit --out "$REPORT" >/dev/null
echo "   file://$REPORT"
echo "   (one self-contained file: savings found, saved and still possible first, then findings by rule,"
echo "    account, region and owner, the trend across runs, the oldest unresolved, each finding's trail)"
echo "   The runs' summary step wrote the same page to the reports bucket (cloud-janitor-reports-demo:"
echo "   runs/demo-enforce.html and latest.html) and linked it in the run's alert (a pre-signed URL)."
