#!/usr/bin/env python3
"""Replay the SCIM connector's requests against a live SCIM server.

Usage (from the workspace root, with a server such as scim2-server running):

    scim2-server --hostname 127.0.0.1 --port 18099 --bearer-token T &
    python3 plugins/scim/scripts/replay.py http://127.0.0.1:18099/v2 T

Phase 1 (an ignored Rust test) writes the exact requests the plugin builds;
this script sends them, substituting ids ({ALICE}, {BOB}, {SALES}) returned
by earlier creates and the bearer token for the `token` secret; phase 2 (the
other ignored test) runs the plugin's response handlers on what came back and
checks each outcome. Only the standard library is used.
"""
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request


def cargo_test(name, env):
    subprocess.run(
        ["cargo", "test", "-q", "-p", "provisio-plugin-scim", "--", "--ignored", "--exact",
         f"replay::{name}", "--nocapture"],
        check=True, env=env)


def main():
    base, token = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="scim-replay-")
    env = dict(os.environ, SCIM_REPLAY_DIR=work, SCIM_BASE_URL=base)
    cargo_test("replay_write_requests", env)
    ids = {}
    out = []
    with open(os.path.join(work, "requests.jsonl")) as f:
        steps = [json.loads(line) for line in f]
    for step in steps:
        url, body = step["url"], step["body"]
        for key, value in ids.items():
            url = url.replace("%7B" + key + "%7D", value)
            if body:
                body = body.replace("{" + key + "}", value)
        req = urllib.request.Request(url, method=step["method"].upper(),
                                     data=body.encode() if body is not None else None)
        for name, value in step["headers"]:
            req.add_header(name, value)
        if step["bearer_secret"]:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req) as resp:
                status, headers, data = resp.status, list(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as e:
            status, headers, data = e.code, list(e.headers.items()), e.read()
        text = data.decode("utf-8", "replace")
        print(f"{step['method'].upper():6} {status} {step['name']}")
        if body:
            print(f"       sent: {body}")
        if step["handler"].startswith("object:") and status in (200, 201):
            ids[step["handler"].split(":")[1]] = json.loads(text)["id"]
        out.append(dict(step, status=status, headers=headers, body=text))
    with open(os.path.join(work, "responses.jsonl"), "w") as f:
        for rec in out:
            f.write(json.dumps(rec) + "\n")
    cargo_test("replay_check_responses", env)


if __name__ == "__main__":
    main()
