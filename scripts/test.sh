#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with the Rust toolchain:
# installs what the tests need, checks formatting and lints, runs unit and black-box
# tests (including the browser tests), then the Autobahn conformance suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build
cargo test --all-targets
scripts/bench-smoke.sh --theirs none
# Install paths: cargo install and the Debian package (a real dpkg -i when CI=true).
scripts/package.sh
scripts/soak.sh --smoke
scripts/fuzz.sh --dev --jobs 2 20
scripts/autobahn.sh target/debug/websocketd
