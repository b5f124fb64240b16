#!/usr/bin/env bash
# Soak and fault harness: drives the release daemon with bench/loadgen on 127.0.0.1 and
# samples the daemon's descriptors, threads, resident memory and programs before, during
# and after each scenario. Prints one table; exits non-zero on any leak, any program left
# behind, or growth beyond the bound stated in the row.
#
#   scripts/soak.sh            full run (about 10-15 minutes on 2 cores)
#   scripts/soak.sh --smoke    tiny workloads (about a minute), run by scripts/test.sh
#
# WEBSOCKETD=PATH tests another daemon binary (e.g. an older build, for before/after
# figures); SOAK_ONLY="churn slowloris exhaustion pingflood faults" picks scenarios. Scenarios: connection churn; slowloris connections while normal clients are
# served; descriptor exhaustion and recovery; a client flooding pings without reading;
# programs that crash, hang, flood stdout or stderr, close stdout, ignore signals, detach.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

smoke=false
[[ "${1:-}" == "--smoke" ]] && smoke=true

if $smoke; then
    CHURN=500 CHURN_C=20 SLOW=200 SLOW_S=4 SLOW_PASSES=2 EXHAUST=120 NOFILE=64 PINGS=20000
    FAULTS=20
    FLOOD_HOLD=1
else
    CHURN=100000 CHURN_C=50 SLOW=2000 SLOW_S=15 SLOW_PASSES=4 EXHAUST=400 NOFILE=256
    PINGS=1000000 FAULTS=200
    FLOOD_HOLD=5
fi
# Bounds: what may remain after a scenario compared with before it (for slowloris, RSS
# after its last wave compared with after the wave before).
FD_SLACK=8
THREAD_SLACK=8
RSS_SLACK_MIB=16
# The ping flood may hold at most this much more memory at its peak.
FLOOD_SLACK_MIB=32

if [[ -z "${WEBSOCKETD:-}" ]]; then
    cargo build --release -q -p websocketd -p loadgen
    WEBSOCKETD=target/release/websocketd
fi
LOADGEN=target/release/loadgen
[[ -x "$LOADGEN" ]] || cargo build --release -q -p loadgen
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

work="$(mktemp -d)"
daemon=""
cleanup() {
    if [[ -n "$daemon" ]] && kill -0 "$daemon" 2>/dev/null; then
        kill -TERM "$daemon" 2>/dev/null || true
        sleep 1
        kill -KILL "$daemon" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# A marker in every long-sleeping program, to find leftovers by command line.
MARK="987.$$"
# Processes carrying the marker, other than the daemon (whose command line holds it too).
marked() { pgrep -f "sleep $MARK" | grep -vx "${daemon:-0}" || true; }
marked_count() { marked | wc -l; }
pkill_marked() { for pid in $(marked); do kill -KILL "$pid" 2>/dev/null || true; done; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start NAME [prlimit options] -- DAEMON ARGS...: starts the daemon, waits for its port.
start() {
    local name="$1"
    shift
    local limits=()
    while [[ "$1" != "--" ]]; do limits+=("$1"); shift; done
    shift
    port="$(free_port)"
    local wrapper=()
    [[ ${#limits[@]} -gt 0 ]] && wrapper=(prlimit "${limits[@]}")
    "${wrapper[@]}" "$WEBSOCKETD" --port="$port" --address=127.0.0.1 "$@" \
        </dev/null >"$work/$name.log" 2>&1 &
    daemon=$!
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "soak: the daemon for $name did not start" >&2
    cat "$work/$name.log" >&2
    exit 1
}

stop() {
    kill -TERM "$daemon" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
    daemon=""
}

# Every process below the daemon except its spawner helper (programs, their children and
# any orphans the helper adopted).
descendants() {
    python3 - "$1" <<'EOF'
import os, sys
root = int(sys.argv[1])
parent, name = {}, {}
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        stat = open(f"/proc/{pid}/stat").read()
        cmd = open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        continue
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        continue
    parent[int(pid)] = int(fields[1])
    name[int(pid)] = cmd
below = set()
changed = True
while changed:
    changed = False
    for pid, ppid in parent.items():
        if pid not in below and (ppid == root or ppid in below):
            below.add(pid)
            changed = True
print(sum(1 for pid in below if not name[pid].startswith(b"websocketd-spawner")))
EOF
}

# sample: "fds threads rss_kib programs" of the daemon.
sample() {
    local fds threads rss
    fds=$(ls "/proc/$daemon/fd" 2>/dev/null | wc -l)
    threads=$(awk '/^Threads:/ {print $2}' "/proc/$daemon/status" 2>/dev/null || echo 0)
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$daemon/status" 2>/dev/null || echo 0)
    echo "$fds $threads $rss $(descendants "$daemon")"
}

# Samples every 0.5 s into FILE until the flag file disappears.
sampler() {
    local file="$1" flag="$2"
    while [[ -e "$flag" ]]; do
        sample >>"$file"
        sleep 0.5
    done
}

# peak COLUMN FILE: the largest value of a sample column.
peak() { awk -v c="$1" 'BEGIN {m=0} $c > m {m=$c} END {print m}' "$2"; }

# Waits (at most 20 s) until no program of the daemon is left.
settle() {
    for _ in $(seq 400); do
        [[ "$(descendants "$daemon")" == 0 ]] && break
        sleep 0.05
    done
    sleep 1
}

json() { python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', ''))"; }

rows=()
failed=0
only="${SOAK_ONLY:-churn slowloris exhaustion pingflood faults}"
wanted() { [[ " $only " == *" $1 "* ]]; }
# row SCENARIO BEFORE PEAK AFTER EXTRA VERDICT
row() {
    rows+=("$(printf '%-30s | %-15s | %-15s | %-15s | %-40s | %s' "$@")")
    [[ "$6" == PASS ]] || failed=1
}

# verdict BEFORE AFTER EXTRA_OK: the leak checks shared by every scenario.
verdict() {
    local -a b=($1) a=($2)
    local ok="$3"
    ((a[0] <= b[0] + FD_SLACK)) || ok=false
    ((a[1] <= b[1] + THREAD_SLACK)) || ok=false
    ((a[2] <= b[2] + RSS_SLACK_MIB * 1024)) || ok=false
    ((a[3] == 0)) || ok=false
    $ok && echo PASS || echo FAIL
}

fmt() {
    local -a s=($1)
    printf '%s/%s/%sM/%s' "${s[0]}" "${s[1]}" "$((s[2] / 1024))" "${s[3]}"
}

# measured NAME COMMAND...: runs COMMAND while sampling; sets before/peak/after.
measured() {
    local name="$1"
    shift
    settle
    before="$(sample)"
    : >"$work/$name.samples"
    touch "$work/flag"
    sampler "$work/$name.samples" "$work/flag" &
    local sampler_pid=$!
    "$@" >"$work/$name.json" || true
    rm -f "$work/flag"
    wait "$sampler_pid" || true
    settle
    after="$(sample)"
    echo "$after" >>"$work/$name.samples"
    peak_line="$(peak 1 "$work/$name.samples")/$(peak 2 "$work/$name.samples")/$(($(peak 3 "$work/$name.samples") / 1024))M/$(peak 4 "$work/$name.samples")"
}

url() { echo "ws://127.0.0.1:$port/"; }

# ---- 1. Churn ----
if wanted churn; then
start churn -- cat
measured churn "$LOADGEN" churn --url "$(url)" --concurrency "$CHURN_C" --count "$CHURN" \
    --wait-ms 10000 --max-seconds 3000
replied=$(json replied <"$work/churn.json")
ok=false
[[ "$replied" == "$CHURN" ]] && ok=true
row "churn $CHURN cycles, c=$CHURN_C" "$(fmt "$before")" "$peak_line" "$(fmt "$after")" \
    "$replied/$CHURN echoed, $(json cycles_per_s <"$work/churn.json" | cut -d. -f1)/s" \
    "$(verdict "$before" "$after" "$ok")"
stop
fi

# ---- 2. Slowloris while normal clients are served ----
if wanted slowloris; then
start slowloris -- cat
slow_and_churn() {
    "$LOADGEN" slowloris --url "$(url)" --connections "$SLOW" --seconds "$SLOW_S" \
        --interval-ms 1000 --max-seconds 120 >"$work/slow.json" &
    local slow_pid=$!
    sleep 1
    "$LOADGEN" churn --url "$(url)" --concurrency 10 --count $((SLOW)) --wait-ms 5000 \
        --max-seconds 120
    wait "$slow_pid" || true
}
measured slowloris slow_and_churn
served=$(json replied <"$work/slowloris.json")
opened=$(json opened <"$work/slow.json")
cut=$(json cut_by_server <"$work/slow.json")
ok=false
[[ "$served" == "$SLOW" && "$opened" == "$SLOW" ]] && ok=true
# The full run holds the connections past the 10 s header timeout: all must be cut.
if ! $smoke && [[ "$cut" != "$opened" ]]; then ok=false; fi
# The same wave again on the same daemon: memory the allocator keeps after the first
# wave is reused (RSS levels off), a leak grows by the same amount every wave. The RSS
# bound applies to the last wave's growth; descriptors, threads and programs to the whole.
first_before="$before"
first_peak="$peak_line"
passes_rss="$(($(echo "$after" | cut -d' ' -f3) / 1024))"
previous="$after"
for ((pass = 2; pass <= SLOW_PASSES; pass++)); do
    previous="$after"
    measured slowloris slow_and_churn
    [[ "$(json cut_by_server <"$work/slow.json")" == "$SLOW" ]] || $smoke || ok=false
    passes_rss="$passes_rss/$(($(echo "$after" | cut -d' ' -f3) / 1024))"
done
baseline="$(echo "$first_before" | cut -d' ' -f1,2) $(echo "$previous" | cut -d' ' -f3) 0"
row "slowloris $SLOW + churn $SLOW x$SLOW_PASSES" "$(fmt "$first_before")" "$first_peak" \
    "$(fmt "$after")" "$served/$SLOW served; $cut/$opened slow cut; RSS MiB $passes_rss" \
    "$(verdict "$baseline" "$after" "$ok")"
stop
fi

# ---- 3. Descriptor exhaustion and recovery ----
if wanted exhaustion; then
start exhaustion --nofile="$NOFILE:$NOFILE" -- sleep "$MARK"
measured exhaustion "$LOADGEN" churn --url "$(url)" --concurrency "$EXHAUST" --count "$EXHAUST" \
    --wait-ms 3000 --max-seconds 300
orphans=$(marked_count)
accept_lines=$(grep -c "Accept failed" "$work/exhaustion.log" || true)
"$LOADGEN" churn --url "$(url)" --concurrency 1 --count 3 --wait-ms 300 >"$work/recovery.json" || true
recovered=$(( $(json silent <"$work/recovery.json") + $(json replied <"$work/recovery.json") ))
settle
after="$(sample)"
# The programs still running after recovery include those counted above: the larger
# count is the number of orphans.
later=$(marked_count)
if ((later > orphans)); then orphans=$later; fi
ok=false
[[ "$orphans" == 0 && "$recovered" == 3 && "$accept_lines" -le 5 ]] && ok=true
row "$EXHAUST clients, nofile=$NOFILE" "$(fmt "$before")" "$peak_line" "$(fmt "$after")" \
    "orphans $orphans; accept-fail lines $accept_lines; recovered $recovered/3" \
    "$(verdict "$before" "$after" "$ok")"
stop
pkill_marked
fi

# ---- 4. Ping flood from a client that never reads ----
if wanted pingflood; then
start pingflood -- cat
measured pingflood "$LOADGEN" pingflood --url "$(url)" --count "$PINGS" --size 125 \
    --stall-seconds 10 --hold-seconds "$FLOOD_HOLD" --max-seconds 600
rss_growth=$(( ($(peak 3 "$work/pingflood.samples") - $(echo "$before" | cut -d' ' -f3)) / 1024 ))
ok=false
((rss_growth <= FLOOD_SLACK_MIB)) && ok=true
row "ping flood $PINGS x 125 B" "$(fmt "$before")" "$peak_line" "$(fmt "$after")" \
    "peak RSS +${rss_growth} MiB (bound $FLOOD_SLACK_MIB); $(json outcome <"$work/pingflood.json")" \
    "$(verdict "$before" "$after" "$ok")"
stop
fi

# ---- 5. Programs that misbehave ----
# fault NAME PROGRAM [DAEMON FLAGS...]
fault() {
    local name="$1" program="$2"
    shift 2
    start "fault-$name" -- "$@" sh -c "$program"
    measured "fault-$name" "$LOADGEN" churn --url "$(url)" --concurrency 20 --count "$FAULTS" \
        --wait-ms 1000 --max-seconds 600
    local left
    left=$(marked_count)
    local failed_cycles
    failed_cycles=$(json failed <"$work/fault-$name.json")
    ok=false
    [[ "$left" == 0 && "$failed_cycles" == 0 ]] && ok=true
    row "program: $name x$FAULTS" "$(fmt "$before")" "$peak_line" "$(fmt "$after")" \
        "left behind $left; failed cycles $failed_cycles" "$(verdict "$before" "$after" "$ok")"
    stop
    pkill_marked
}
if wanted faults; then
fault crash 'kill -SEGV $$'
fault hang "exec sleep $MARK"
fault "flood stdout" 'exec yes soak'
# Its stderr is drained but not logged: logging every line would only measure the disk.
fault "flood stderr" 'yes soak >&2' --loglevel=fatal
fault "close stdout" "exec >&-; exec sleep $MARK"
fault "ignore signals" "trap '' INT TERM HUP; while :; do sleep $MARK; done"
fault detach "setsid sh -c \"trap '' INT TERM HUP; exec sleep $MARK\" & read line"
fi

echo
printf '%-30s | %-15s | %-15s | %-15s | %-40s | %s\n' scenario "before" "peak" "after" "detail" result
printf '%-30s | %-15s | %-15s | %-15s | %-40s | %s\n' "" "fds/thr/RSS/prg" "fds/thr/RSS/prg" "fds/thr/RSS/prg" "" ""
for line in "${rows[@]}"; do echo "$line"; done
echo "bounds: after - before <= $FD_SLACK fds, $THREAD_SLACK threads, $RSS_SLACK_MIB MiB RSS (slowloris: its last wave), 0 programs left; ping flood peak <= +$FLOOD_SLACK_MIB MiB"
exit "$failed"
