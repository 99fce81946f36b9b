#!/usr/bin/env bash
# The demo: provision a handful of users and a group with members into a local,
# independent SCIM server (scim2-server) through the sandboxed wasm SCIM
# connector, then show the result as the server itself holds it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
scripts/setup.sh
scripts/build-plugins.sh 2>/dev/null
cargo build --quiet -p provisio
BIN=$ROOT/target/debug/provisio
PLUGIN=$ROOT/target/wasm32-wasip2/release/provisio_plugin_scim.wasm

OUT=$ROOT/demo-out
rm -rf "$OUT" && mkdir -p "$OUT"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export DEMO_SCIM_TOKEN="demo-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
.venv-scim/bin/scim2-server --hostname 127.0.0.1 --port "$PORT" --bearer-token "$DEMO_SCIM_TOKEN" >"$OUT/scim2-server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

SHA=$(sha256sum "$PLUGIN" | cut -d' ' -f1)
cat >"$OUT/provisio.toml" <<TOML
[runtime]
state_dir = "state"

[plugins.scim]
path = "$PLUGIN"
sha256 = "$SHA"

[secrets.scim_token]
env = "DEMO_SCIM_TOKEN"
hosts = ["http://127.0.0.1:$PORT"]

[connections.demo]
plugin = "scim"
settings = { base_url = "http://127.0.0.1:$PORT/v2" }
secrets = { token = "scim_token" }
allowed_hosts = ["http://127.0.0.1:$PORT"]
TOML
export PROVISIO_CONFIG=$OUT/provisio.toml PROVISIO_LOG=warn

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
json_id() { python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }

say "The connector, as the host sees it (provisio plugin inspect)"
$BIN plugin inspect "$PLUGIN" | sed -n '1,24p'

say "Test connection (a user lookup by a random value; expects no match)"
$BIN test-connection demo

say "Provision five users through the wasm sandbox"
declare -a IDS
for u in "ada:Ada:Lovelace:Engineering" "grace:Grace:Hopper:Engineering" "alan:Alan:Turing:Research" \
         "edsger:Edsger:Dijkstra:Research" "barbara:Barbara:Liskov:Engineering"; do
  IFS=: read -r login given family dept <<<"$u"
  id=$($BIN user create demo --json "{\"userName\":\"$login@example.com\",\"displayName\":\"$given $family\",\"name.givenName\":\"$given\",\"name.familyName\":\"$family\",\"emails[type eq \\\"work\\\"].value\":\"$login@example.com\",\"externalId\":\"src-$login\",\"active\":true}" | json_id)
  IDS+=("$id"); echo "created $login@example.com -> $id"
done

say "Create a group and add three members in one batch"
GID=$($BIN group create demo --json '{"displayName":"Engineering","externalId":"src-eng"}' | json_id)
echo "created group Engineering -> $GID"
$BIN group add-members demo "$GID" "${IDS[0]}" "${IDS[1]}" "${IDS[4]}" >/dev/null && echo "added ada, grace, barbara"

say "Update one user (only the changed attribute) and disable another"
$BIN user update demo "${IDS[2]}" --json '{"title":"Mathematician"}' >/dev/null && echo "alan: title -> Mathematician"
$BIN user disable demo "${IDS[3]}" >/dev/null && echo "edsger: disabled (active=false)"

say "What the SCIM server now holds (read directly, not through Provisio)"
curl -s -H "Authorization: Bearer $DEMO_SCIM_TOKEN" "http://127.0.0.1:$PORT/v2/Users?sortBy=userName" | python3 <(cat <<'PY'
import json, sys
for u in json.load(sys.stdin)["Resources"]:
    print("  user  %-22s active=%-5s title=%-14s id=%s" % (u["userName"], u.get("active"), u.get("title", "-"), u["id"]))
PY
)
curl -s -H "Authorization: Bearer $DEMO_SCIM_TOKEN" "http://127.0.0.1:$PORT/v2/Groups/$GID" | python3 <(cat <<'PY'
import json, sys
g = json.load(sys.stdin)
print("  group %s members=%s" % (g["displayName"], [m["value"] for m in g.get("members", [])]))
PY
)

say "The sandbox's egress audit for one call (secrets never appear)"
PROVISIO_LOG=info $BIN user get demo "${IDS[0]}" 2>&1 >/dev/null | grep egress | tail -1
echo
echo "config, state and server log are in $OUT"
