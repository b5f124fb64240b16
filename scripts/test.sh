#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with the Rust toolchain:
# installs what the tests need, checks formatting and lints, runs unit and black-box
# tests (including the browser tests), then the Autobahn conformance suite.
# Each step's wall time is printed after it, so a slow run says where the time went.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The release builds made here (benchmark smoke, install paths, package) check that those
# paths work, not how fast the result is: without LTO and with parallel code generation
# they take about half as long on two cores. A release build outside the suite uses the
# profile in Cargo.toml as written.
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16

suite_started=$SECONDS
step() {
  local started=$SECONDS
  "$@"
  echo "test.sh: $* took $((SECONDS - started)) s (suite so far $((SECONDS - suite_started)) s)" >&2
}

step scripts/install-test-deps.sh
step cargo fmt --all -- --check
step cargo clippy --workspace --all-targets -- -D warnings
step cargo build
step cargo test --all-targets
step scripts/bench-smoke.sh --theirs none
# Install paths: cargo install and the Debian package (a real dpkg -i when CI=true).
step scripts/package.sh
step scripts/soak.sh --smoke
step scripts/fuzz.sh --dev --jobs 2 20
step scripts/autobahn.sh target/debug/websocketd
