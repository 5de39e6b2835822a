#!/usr/bin/env bash
# make demo: a fresh emulator, the twin estate, then detection in dry-run as the Lambdas run it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/cloud-janitor/target}/debug"
source "$ROOT/scripts/emulator.sh"
POLICY="$(mktemp --suffix=.toml)"
"$BIN/testkit" policy >"$POLICY"

echo "== 1. The estate (moto at $AWS_ENDPOINT_URL): two regions, a member account, a twin per rule"
"$BIN/testkit" tables --prefix demo
"$BIN/testkit" twins --prefix demo

export JANITOR_AUDIT_TABLE=demo-audit JANITOR_LOCK_TABLE=demo-lock JANITOR_SNOOZE_TABLE=demo-snooze
SCOPE=(--regions us-east-1,eu-west-1 --accounts 123456789012,222222222222 --policy "$POLICY")

echo
echo "== 2. Read-only scan from a laptop: janitor scan"
"$BIN/janitor" scan "${SCOPE[@]}" --quiet --output json | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("   %d findings, %d scopes scanned, %d failed; API calls: %s" % (
    r["summary"]["findings"], r["summary"]["scopes_scanned"], r["summary"]["scopes_failed"],
    ", ".join("%s %d" % (svc, sum(ops.values())) for svc, ops in r["api_calls"].items())))'

echo
echo "== 3. Detection as the state machine runs it (dry-run): discovery -> metric-check -> lock"
"$BIN/janitor" run "${SCOPE[@]}" --quiet --mode dry-run --run-id demo-run-1

echo
echo "== 4. A second run the next minute: everything is still locked by demo-run-1"
"$BIN/janitor" run "${SCOPE[@]}" --quiet --mode dry-run --run-id demo-run-2 | tail -n 1
rm -f "$POLICY"
