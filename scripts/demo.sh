#!/usr/bin/env bash
# The demo: a source directory is synced into a local, independent SCIM server
# (scim2-server) through the sandboxed wasm SCIM connector. Shows the plan
# (dry run), the initial cycle, the server's contents read directly, a second
# cycle after edits in the source that sends only the changes, a third that
# sends nothing, the provisioning logs, and the mapping tester.
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

[sources.corp]
path = "directory.json"

[connections.demo]
plugin = "scim"
source = "corp"
settings = { base_url = "http://127.0.0.1:$PORT/v2" }
secrets = { token = "scim_token" }
allowed_hosts = ["http://127.0.0.1:$PORT"]
[connections.demo.scope]
excluded_roles = ["Default Access"]
TOML

python3 - "$OUT/directory.json" <<'PY'
import json, sys
people = [("ada","Ada","Lovelace","Engineer"), ("grace","Grace","Hopper","Admiral"), ("alan","Alan","Turing","Researcher"),
          ("edsger","Edsger","Dijkstra","Professor"), ("barbara","Barbara","Liskov","Engineer"), ("margaret","Margaret","Hamilton","Director"),
          ("donald","Donald","Knuth","Professor"), ("ken","Ken","Thompson","Intern")]
users = [{"id": f"u-{l}", "userPrincipalName": f"{l}@example.com", "mail": f"{l}@example.com", "givenName": g, "surname": s,
          "displayName": f"{g} {s}", "jobTitle": t, "accountEnabled": True} for l, g, s, t in people]
groups = [{"id": "g-eng", "displayName": "Engineering", "members": ["u-ada", "u-grace", "u-barbara", "u-margaret"]},
          {"id": "g-res", "displayName": "Research", "members": ["u-alan", "u-edsger", "u-donald"]}]
assignments = [{"principal": "g-eng", "connection": "demo", "role": "User"},
               {"principal": "g-res", "connection": "demo", "role": "User"},
               {"principal": "u-ken", "connection": "demo", "role": "Default Access"}]
json.dump({"users": users, "groups": groups, "assignments": assignments}, open(sys.argv[1], "w"), indent=1)
PY
export PROVISIO_CONFIG=$OUT/provisio.toml PROVISIO_LOG=warn

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show_target() {
  curl -s -H "Authorization: Bearer $DEMO_SCIM_TOKEN" "http://127.0.0.1:$PORT/v2/Users?sortBy=userName" | python3 <(cat <<'PY'
import json, sys
for u in json.load(sys.stdin)["Resources"]:
    print("  user  %-22s active=%-5s title=%-12s externalId=%s" % (u["userName"], u.get("active"), u.get("title", "-"), u.get("externalId")))
PY
)
  curl -s -H "Authorization: Bearer $DEMO_SCIM_TOKEN" "http://127.0.0.1:$PORT/v2/Users?count=1000" > "$OUT/users.json"
  curl -s -H "Authorization: Bearer $DEMO_SCIM_TOKEN" "http://127.0.0.1:$PORT/v2/Groups" | python3 <(cat <<'PY'
import json, sys
names = {u["id"]: u["userName"].split("@")[0] for u in json.load(open(sys.argv[1]))["Resources"]}
for g in json.load(sys.stdin)["Resources"]:
    print("  group %-12s members=%s" % (g["displayName"], sorted(names.get(m["value"], m["value"]) for m in g.get("members", []))))
PY
) "$OUT/users.json"
}

say "The connector, as the host sees it (provisio plugin inspect, abridged)"
$BIN plugin inspect "$PLUGIN" | sed -n '1,10p'

say "Test connection"
$BIN test-connection demo

say "What would happen? (provisio sync demo --dry-run: nothing is sent)"
$BIN sync demo --dry-run

say "Initial cycle (provisio sync demo)"
$BIN sync demo

say "What the SCIM server holds now (read directly, not through Provisio)"
show_target

say "Edits in the source: alan's title, edsger disabled, a new hire (frances), margaret leaves Engineering"
python3 - "$OUT/directory.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
by = {u["id"]: u for u in d["users"]}
by["u-alan"]["jobTitle"] = "Codebreaker"
by["u-edsger"]["accountEnabled"] = False
d["users"].append({"id": "u-frances", "userPrincipalName": "frances@example.com", "mail": "frances@example.com", "givenName": "Frances",
                   "surname": "Allen", "displayName": "Frances Allen", "jobTitle": "Engineer", "accountEnabled": True})
eng = next(g for g in d["groups"] if g["id"] == "g-eng")
eng["members"] = [m for m in eng["members"] if m != "u-margaret"] + ["u-frances"]
json.dump(d, open(sys.argv[1], "w"), indent=1)
PY
$BIN sync demo --dry-run
$BIN sync demo

say "Nothing changed: the next cycle makes no target call"
$BIN sync demo

say "What the SCIM server holds now"
show_target

say "Provisioning logs of the last cycles (provisio logs --connection demo --limit 5)"
$BIN logs --connection demo --limit 5

say "Provision on demand: ken (assigned only with the excluded role 'Default Access')"
$BIN provision demo --user u-ken

say "Mapping tester: what the connector would receive for ada (provisio mapping test)"
$BIN mapping test demo --user u-ada
echo
echo "config, directory, state and server log are in $OUT"
