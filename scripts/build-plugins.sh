#!/usr/bin/env bash
# Build every plugin (and the sandbox test plugin) as wasm32-wasip2 components.
# Never builds the host for wasm: each plugin is named with -p.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=()
for toml in plugins/*/Cargo.toml tests/plugins/*/Cargo.toml; do
  [ -f "$toml" ] || continue
  pkgs+=(-p "$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$toml" | head -1)")
done
cargo build --release --target wasm32-wasip2 "${pkgs[@]}"
ls -l "${CARGO_TARGET_DIR:-target}"/wasm32-wasip2/release/*.wasm >&2
