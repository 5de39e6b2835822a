# Sourced by demo.sh and bench.sh: starts moto in server mode on a free loopback port,
# points the AWS SDK at it, and stops it when the calling script exits.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MOTO="${MOTO_SERVER:-$ROOT/.venv/bin/moto_server}"
[ -x "$MOTO" ] || { echo "moto_server not found at $MOTO: run 'make venv'" >&2; exit 1; }
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$MOTO" -H 127.0.0.1 -p "$PORT" >"${TMPDIR:-/tmp}/cloud-janitor-moto-$PORT.log" 2>&1 &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$PORT/moto-api/" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$PORT/moto-api/" >/dev/null || { echo "moto did not start" >&2; exit 1; }
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN

# moto has no Service Catalog provisioned products: the testkit stub answers for it (with the
# twin estate's products when SERVICE_CATALOG_TWINS=1).
TESTKIT="${CARGO_TARGET_DIR:-$HOME/.cache/cloud-janitor/target}/debug/testkit"
SC_OUT="${TMPDIR:-/tmp}/cloud-janitor-service-catalog-$PORT.out"
"$TESTKIT" service-catalog ${SERVICE_CATALOG_TWINS:+--twins} >"$SC_OUT" 2>&1 &
SC_PID=$!
trap 'kill $MOTO_PID $SC_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q '^http://' "$SC_OUT" 2>/dev/null && break
  sleep 0.1
done
grep -q '^http://' "$SC_OUT" || { echo "the Service Catalog stub did not start: $(cat "$SC_OUT")" >&2; exit 1; }
export AWS_ENDPOINT_URL_SERVICE_CATALOG="$(grep -m1 '^http://' "$SC_OUT")"
# The same stub answers the Price List Query API, with the twin estate's slice of prices.
export AWS_ENDPOINT_URL_PRICING="$AWS_ENDPOINT_URL_SERVICE_CATALOG"

# Prints the ARN of a new Slack secret on the emulator: create_slack_secret NAME SIGNING_SECRET
create_slack_secret() {
  "$ROOT/.venv/bin/python" - "$1" "$2" <<'PY'
import boto3, json, os, sys
client = boto3.client("secretsmanager", region_name=os.environ["AWS_REGION"])
secret = json.dumps({"bot_token": "xoxb-local", "signing_secret": sys.argv[2]})
print(client.create_secret(Name=sys.argv[1], SecretString=secret)["ARN"])
PY
}

# Prints the ARN of a new SNS topic on the emulator: create_topic NAME
create_topic() {
  "$ROOT/.venv/bin/python" -c 'import boto3, os, sys; print(boto3.client("sns", region_name=os.environ["AWS_REGION"]).create_topic(Name=sys.argv[1])["TopicArn"])' "$1"
}

create_bucket() {
  "$ROOT/.venv/bin/python" -c 'import boto3, os, sys; boto3.client("s3", region_name=os.environ["AWS_REGION"]).create_bucket(Bucket=sys.argv[1])' "$1"
}
