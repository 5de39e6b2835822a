#!/usr/bin/env bash
# make bench: 10,000 running instances over 4 regions (a week of CPU data each, one in ten
# idle) on a fresh emulator; one read-only scan, then the shipped state machine run locally
# over them. Prints wall time, peak memory (per function for the pipeline), AWS calls per
# service, the largest Step Functions payload and the state transitions. Figures, not
# assertions. BENCH_PER_REGION and BENCH_REGIONS make it smaller or larger.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/cloud-janitor/target}/debug"
PER_REGION="${BENCH_PER_REGION:-2500}"
REGIONS="${BENCH_REGIONS:-us-east-1,eu-west-1,us-west-2,ap-southeast-2}"
source "$ROOT/scripts/emulator.sh"
WORK="$(mktemp -d)"
"$BIN/testkit" policy >"$WORK/policy.toml"

echo "seeding $PER_REGION instances in each of $REGIONS ..."
SEED_START=$(date +%s.%N)
"$BIN/testkit" bench --regions "$REGIONS" --per-region "$PER_REGION" >/dev/null
SEED_END=$(date +%s.%N)

echo "scanning ..."
set +e
/usr/bin/time -f "%e %M" -o "$WORK/time" \
  "$BIN/janitor" scan --regions "$REGIONS" --policy "$WORK/policy.toml" --output json --quiet >"$WORK/report.json"
CODE=$?
set -e
python3 - "$WORK" "$SEED_START" "$SEED_END" "$CODE" <<'PY'
import json, sys
work, seed_start, seed_end, code = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
report = json.load(open(f"{work}/report.json"))
wall, rss_kb = open(f"{work}/time").read().split()[-2:]
s = report["summary"]
print()
print("Cloud Janitor scan benchmark (debug build, moto on loopback)")
print(f"  estate seeded in        {seed_end - seed_start:8.1f} s")
print(f"  scan wall time          {float(wall):8.1f} s   (exit code {code})")
print(f"  peak memory (RSS)       {int(rss_kb) / 1024:8.1f} MiB")
print(f"  scopes scanned/failed   {s['scopes_scanned']:>5} / {s['scopes_failed']}")
print(f"  findings                {s['findings']:8d}   {s['by_policy']}")
print(f"  largest scope as JSON   {s['max_scope_payload_bytes']:8d} bytes (findings + candidates: the run store's, not a payload)")
print("  AWS API calls:")
for service, ops in report["api_calls"].items():
    detail = ", ".join(f"{op} {n}" for op, n in ops.items())
    print(f"    {service:<12} {sum(ops.values()):5d}   {detail}")
PY
rm -rf "$WORK"

# The whole pipeline: the shipped state machine, run locally with the real handler binaries,
# in dry-run over the same estate (detect -> notify -> grace (0 s) -> recheck -> remediate).
if [ "${BENCH_PIPELINE:-1}" = "1" ]; then
  WORK="$(mktemp -d)"
  "$BIN/testkit" policy | sed 's/grace_period = "72h"/grace_period = "0s"/' >"$WORK/policy.toml"
  "$BIN/testkit" tables --prefix bench >/dev/null
  "$BIN/testkit" slack-stub >"$WORK/slack-url" &
  STUB_PID=$!
  trap 'kill $STUB_PID 2>/dev/null || true; kill $MOTO_PID 2>/dev/null || true' EXIT
  for _ in $(seq 1 50); do [ -s "$WORK/slack-url" ] && break; sleep 0.1; done
  SLACK_API="$(cat "$WORK/slack-url")"
  SECRET_ARN="$(create_slack_secret bench/slack bench-signing-secret)"
  TOPIC_ARN="$(create_topic bench-alerts)"
  create_bucket bench-runs
  echo
  echo "running the state machine locally (dry-run) ..."
  set +e
  JANITOR_SLACK_SECRET_ID="$SECRET_ARN" JANITOR_SLACK_API_URL="$SLACK_API" JANITOR_ALERT_TOPIC_ARN="$TOPIC_ARN" \
    /usr/bin/time -f "%e %M" -o "$WORK/time" \
    "$BIN/janitor" run --local --grace 0s --run-bucket bench-runs --repo "$ROOT" --mode dry-run --regions "$REGIONS" --accounts 123456789012 \
      --policy "$WORK/policy.toml" --audit-table bench-audit --lock-table bench-lock --snooze-table bench-snooze \
      --output json >"$WORK/run.json"
  CODE=$?
  set -e
  python3 - "$WORK" "$CODE" <<'PY'
import json, sys
work, code = sys.argv[1], int(sys.argv[2])
run = json.load(open(f"{work}/run.json"))
wall, rss_kb = open(f"{work}/time").read().split()[-2:]
print()
print("Cloud Janitor pipeline benchmark (the shipped ASL on aws-local-stepfunctions, debug handler binaries)")
print(f"  execution               {run['status']} {run.get('error') or ''} (exit code {code})")
print(f"  wall time               {float(wall):8.1f} s   (grace Wait 0 s)")
print(f"  state transitions       {run['state_transitions']:8d}   (Step Functions Standard bills these)")
print(f"  largest Task payload    {run['largest_payload_bytes']:8d} bytes (Step Functions limit 262144)")
print(f"  Lambda invocations      {sum(run['invocations'].values()):8d}   {run['invocations']}")
print(f"  peak RSS, runner        {int(rss_kb) / 1024:8.1f} MiB (largest of the CLI, node and handlers)")
for name, kib in sorted(run.get("peak_rss_kib", {}).items()):
    print(f"  peak RSS, {name:<13} {kib / 1024:8.1f} MiB")
s = run["summary"]
print(f"  findings found/notified {sum(x.get('tally', {}).get('found', 0) for x in s.get('scopes', [])):8d} / "
      f"{sum(x.get('tally', {}).get('notified', 0) for x in s.get('scopes', []))}")
for scope in run["summary"].get("scopes", []):
    if "tally" not in scope:
        print(f"  {scope['scope']['account']}/{scope['scope']['region']:<10} FAILED, unrecorded: {scope.get('error')} / {scope.get('release_error')}")
        continue
    t = scope["tally"]
    print(f"  {scope['scope']['account']}/{scope['scope']['region']:<10} {scope['status']:<10} found {t['found']}, "
          f"notified {t['notified']}, would remediate {t['would_remediate']}, failed {t['failed']}")
PY
  rm -rf "$WORK"
fi
