#!/usr/bin/env bash
# Runs the Autobahn|Testsuite fuzzing client against `websocketd --maxframesize=0 cat` and
# fails unless every case is OK, NON-STRICT or INFORMATIONAL.
# Usage: scripts/autobahn.sh [BINARY]   (default: target/debug/websocketd)
# Skipped: binary-echo cases that line mode cannot express (1.2.*, 9.2.*, 9.4.*, 9.6.*,
# 9.8.*) and compression (12.*, 13.*).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
autobahn=${AUTOBAHN_DIR:-$repo/../shared/autobahn}
venv=${AUTOBAHN_VENV:-/tmp/autobahn-venv}
binary=${1:-$repo/target/debug/websocketd}
out=${AUTOBAHN_OUT:-$repo/target/autobahn}

if [ ! -x "$autobahn/run.sh" ]; then
  echo "autobahn: $autobahn not found, skipping"
  exit 0
fi
[ -x "$venv/bin/wstest" ] || "$autobahn/setup.sh" "$venv" > /dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$binary" --port="$port" --address=127.0.0.1 --maxframesize=0 --loglevel=error cat > "$out.server.log" 2>&1 &
server=$!
trap 'kill $server 2> /dev/null || true' EXIT
for _ in $(seq 1 200); do
  if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2> /dev/null; then break; fi
  sleep 0.05
done

rm -rf "$out"
AB_VENV=$venv EXCLUDE='1.2.*,9.2.*,9.4.*,9.6.*,9.8.*,12.*,13.*' \
  "$autobahn/run.sh" "ws://127.0.0.1:$port" websocketd "$out" > "$out.run.log" 2>&1 || true
tail -n 40 "$out.run.log"

python3 - "$out/index.json" <<'PY'
import json, sys
index = json.load(open(sys.argv[1]))
cases = index["websocketd"]
good = {"OK", "NON-STRICT", "INFORMATIONAL"}
bad = {cid: (c["behavior"], c["behaviorClose"]) for cid, c in cases.items()
       if c["behavior"] not in good or c["behaviorClose"] not in {"OK", "INFORMATIONAL"}}
for cid in sorted(bad, key=lambda c: tuple(int(x) for x in c.split("."))):
    print(f"autobahn: case {cid}: {bad[cid][0]} / close {bad[cid][1]}")
print(f"autobahn: {len(cases) - len(bad)} passed, {len(bad)} failed")
sys.exit(1 if bad or not cases else 0)
PY
