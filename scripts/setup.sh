#!/usr/bin/env bash
# One-time setup, idempotent: the wasm target and the Python venv holding the
# independent SCIM server (scim2-server) that tests and the demo run against.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null

VENV=.venv-scim
want="scim2-server==0.8.3 scim2-models==0.12.3 pydantic==2.14.3"
if [ ! -x "$VENV/bin/scim2-server" ] || ! "$VENV/bin/pip" freeze 2>/dev/null | grep -q '^scim2-server==0.8.3$'; then
  echo "setup: creating $VENV with $want" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $want
fi
