#!/usr/bin/env bash
# Builds the release daemon and load generator, then runs every benchmark scenario once
# with tiny workloads (about 10-20 s) against our websocketd, and against Debian's
# websocketd 0.4.1 too when it is installed. Fails if any load generator run fails.
# This checks that the benchmark works; it measures nothing worth keeping.
# Usage: scripts/bench-smoke.sh [extra bench/run.py options]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release -p websocketd -p loadgen
exec python3 bench/run.py --smoke "$@"
