#!/usr/bin/env bash
# make bench: 2,000 running instances over 2 regions (a week of CPU data each) on a fresh
# emulator, then one read-only scan. Prints wall time, peak memory, AWS calls per service
# and the largest Step Functions payload a scope produced. Figures, not assertions.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/cloud-janitor/target}/debug"
PER_REGION="${BENCH_PER_REGION:-1000}"
REGIONS="${BENCH_REGIONS:-us-east-1,eu-west-1}"
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
wall, rss_kb = open(f"{work}/time").read().split()
s = report["summary"]
print()
print("Cloud Janitor scan benchmark (debug build, moto on loopback)")
print(f"  estate seeded in        {seed_end - seed_start:8.1f} s")
print(f"  scan wall time          {float(wall):8.1f} s   (exit code {code})")
print(f"  peak memory (RSS)       {int(rss_kb) / 1024:8.1f} MiB")
print(f"  scopes scanned/failed   {s['scopes_scanned']:>5} / {s['scopes_failed']}")
print(f"  findings                {s['findings']:8d}   {s['by_policy']}")
print(f"  largest scope payload   {s['max_scope_payload_bytes']:8d} bytes (Step Functions limit 262144)")
print("  AWS API calls:")
for service, ops in report["api_calls"].items():
    detail = ", ".join(f"{op} {n}" for op, n in ops.items())
    print(f"    {service:<12} {sum(ops.values()):5d}   {detail}")
PY
rm -rf "$WORK"
