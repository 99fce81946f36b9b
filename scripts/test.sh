#!/usr/bin/env bash
# Run every test: setup, build the wasm plugins, then the whole workspace's
# tests (host unit tests, sandbox and plugin-loading tests, SCIM end-to-end
# tests against scim2-server, SDK and plugin unit tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-plugins.sh
cargo test --workspace --all-targets --no-fail-fast "$@"
# Doc tests (the SDK's example connector among them).
cargo test --workspace --doc "$@"
