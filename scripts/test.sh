#!/usr/bin/env bash
# Every check CI runs, in the order that fails fastest: formatting, the proto contract's lint,
# clippy, then all tests (unit and black-box).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --check
npx --yes @bufbuild/buf@1.75.0 lint
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
