#!/usr/bin/env python3
"""Broadcast benchmarks: our `--broadcast` mode against websocat's `broadcast:` mode.

    bench/broadcast.py [--ours PATH] [--websocat PATH] [--runs N] [--clients 1,100,...]
                       [--seconds S] [--idle N] [--out FILE]

(a) fan-out: one program prints 100-byte lines as fast as it can (each starts with a
sequence number and the wall-clock time it was written) to N clients; the load generator
counts the messages delivered per second in total, the loss the sequence numbers show,
and the latency from the program's write to the client's receive. (b) idle: N clients
connect and only listen; the daemon's RSS per client and the time to connect them all.

Every server runs pinned (with its program) to core 0, the load generator to core 1. The
servers run in turn within each repetition (order alternating), so ratios are taken
within one run on the same machine state. Python 3 standard library only; the helpers
come from bench/run.py. See docs/benchmarks.md.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as common  # noqa: E402  (the shared helpers of bench/run.py)

ROOT = common.ROOT
DEFAULT_WEBSOCAT = os.path.join(os.path.dirname(ROOT), "tools", "bin", "websocat")

# Waits for the gate file, then prints 100-byte lines (12-digit sequence number, 20-digit
# nanosecond timestamp, padding) in writes of 256 lines, as fast as the pipe takes them;
# every half second it records how many lines it has written in GATE.count.
PRODUCER = r"""
import os, sys, time
gate = sys.argv[1]
while not os.path.exists(gate):
    time.sleep(0.002)
pad = b"x" * 65
seq, per, start, mark = 0, 256, time.time(), time.time()
while True:
    ts = time.time_ns()
    block = b"".join([b"%012d %020d %s\n" % (seq + i, ts, pad) for i in range(per)])
    view = memoryview(block)
    while view:
        view = view[os.write(1, view):]
    seq += per
    now = time.time()
    if now - mark > 0.5:
        mark = now
        with open(gate + ".count", "w") as f:
            f.write("%d %f" % (seq, now - start))
"""


def servers(args, program, port):
    """(name, argv) of every server under test, each serving `program` on `port`."""
    quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in program)
    out = [
        ("ours", [args.ours, f"--port={port}", "--address=127.0.0.1", "--loglevel=error",
                  "--broadcast", *program]),
        ("ours lossless", [args.ours, f"--port={port}", "--address=127.0.0.1",
                           "--loglevel=error", "--broadcast", "--maxqueue=0", *program]),
    ]
    if args.websocat:
        out.append(("websocat", [args.websocat, "-t", "-q", f"ws-l:127.0.0.1:{port}",
                                 f"broadcast:cmd:{quoted}"]))
    return out


class Daemon:
    def __init__(self, argv):
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(["taskset", "-c", common.SERVER_CORE, *argv],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, start_new_session=True)
        self.pid = self.proc.pid

    def rss_kib(self):
        return common.read_kib(f"/proc/{self.pid}/status", "VmRSS") or 0

    def stop(self):
        common.end_session(self.proc, 3)
        self.log.seek(0)
        tail = self.log.read().decode(errors="replace")[-300:]
        self.log.close()
        return tail


def loadgen(args, scenario, port, extra, on_ready):
    """Runs the load generator; calls on_ready() when it prints READY. Returns its report."""
    argv = ["taskset", "-c", common.CLIENT_CORE, args.loadgen, scenario,
            "--url", f"ws://127.0.0.1:{port}/", *extra, "--max-seconds", str(args.max_seconds)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
    reader.start()
    errors = []
    for raw in proc.stderr:
        line = raw.decode(errors="replace").strip()
        if line == "READY":
            on_ready(proc)
            break
        errors.append(line)
    proc.wait(300)
    reader.join(5)
    report = common.parse_report(b"".join(out)) or {"error": " | ".join(errors)[-300:]}
    return report


def fanout_run(args, name, clients, workdir):
    gate = os.path.join(workdir, f"gate-{time.monotonic_ns()}")
    program = ["python3", "-c", PRODUCER, gate]
    port = common.free_port()
    argv = dict(servers(args, program, port))[name]
    daemon = Daemon(argv)
    started = {}
    try:
        common.wait_port(port, timeout=10)

        def ready(_proc):
            started["t"] = time.monotonic()
            open(gate, "w").close()

        sources = max(1, min(50, clients // 2000 + 1))
        report = loadgen(args, "fanout", port,
                         ["--connections", str(clients), "--parallel", "200",
                          "--sources", str(sources), "--seconds", str(args.seconds),
                          "--warmup", "1"], ready)
        report["peak_rss_mib"] = daemon.rss_kib() / 1024
        try:
            with open(gate + ".count") as f:
                seq, elapsed = f.read().split()
            report["program_lines_per_s"] = int(seq) / float(elapsed)
        except (OSError, ValueError):
            report["program_lines_per_s"] = None
    finally:
        tail = daemon.stop()
    if "error" in report:
        report["error"] += " / server: " + tail
    return report


def idle_run(args, name, clients):
    port = common.free_port()
    argv = dict(servers(args, ["sleep", "100000"], port))[name]
    daemon = Daemon(argv)
    measured = {}
    try:
        common.wait_port(port, timeout=10)
        time.sleep(0.3)
        base = daemon.rss_kib()

        def ready(proc):
            time.sleep(1.0)
            held = daemon.rss_kib()
            measured["rss_per_client_kib"] = (held - base) / clients
            measured["held_rss_mib"] = held / 1024
            measured["base_rss_kib"] = base
            proc.stdin.write(b"\n")
            proc.stdin.close()

        sources = max(1, clients // 2000 + 1)
        report = loadgen(args, "idle", port,
                         ["--connections", str(clients), "--parallel", "200",
                          "--sources", str(sources), "--hold-seconds", "60"], ready)
        report.update(measured)
    finally:
        tail = daemon.stop()
    if "error" in report:
        report["error"] += " / server: " + tail
    return report


def median(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


def fmt(value, spec="{:.0f}"):
    return "–" if value is None else spec.format(value)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ours", default=common.DEFAULT_OURS)
    p.add_argument("--loadgen", default=common.DEFAULT_LOADGEN)
    p.add_argument("--websocat", default=DEFAULT_WEBSOCAT,
                   help="websocat binary, or 'none'")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--clients", default="1,100,1000,10000")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--idle", type=int, default=10000)
    p.add_argument("--websocat-clients", default="1,100,1000",
                   help="fan-out sizes websocat runs (it stalls beyond)")
    p.add_argument("--max-seconds", type=float, default=30,
                   help="bound on one load generator run")
    p.add_argument("--out")
    args = p.parse_args()
    if args.websocat == "none" or not os.access(args.websocat, os.X_OK):
        print(f"note: websocat not found at {args.websocat}; ours only", file=sys.stderr)
        args.websocat = None
    limit, _ = common.raise_nofile(4 * args.idle + 1000)
    names = [name for name, _ in servers(args, ["true"], 1)]
    sizes = [int(c) for c in args.clients.split(",") if c]
    workdir = tempfile.mkdtemp(prefix="wsd-broadcast-bench-")
    results = {}
    try:
        for rep in range(args.runs):
            order = names if rep % 2 == 0 else list(reversed(names))
            for clients in sizes:
                ws_sizes = [int(c) for c in args.websocat_clients.split(",") if c]
                for name in order:
                    if name == "websocat" and clients not in ws_sizes:
                        continue
                    r = fanout_run(args, name, clients, workdir)
                    results.setdefault(("fanout", clients, name), []).append(r)
                    print(f"run {rep + 1} fanout {clients:>5} {name:<14} "
                          f"{json.dumps(r)}", file=sys.stderr)
            if args.idle:
                for name in order:
                    r = idle_run(args, name, args.idle)
                    results.setdefault(("idle", args.idle, name), []).append(r)
                    print(f"run {rep + 1} idle {args.idle} {name:<14} {json.dumps(r)}",
                          file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    lines = []
    lines.append(f"Fan-out: one program, 100-byte lines; medians of {args.runs} runs; "
                 f"{args.seconds:g} s measured after 1 s of warm-up; nofile limit {limit}.")
    lines.append("")
    lines.append("| clients | server | delivered msgs/s | × websocat | lost % | clients closed "
                 "| program lines/s | p50 ms | p99 ms | daemon RSS MiB |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for clients in sizes:
        theirs = results.get(("fanout", clients, "websocat"), [])
        for name in names:
            runs = results.get(("fanout", clients, name), [])
            rate = median([r.get("msgs_per_s") for r in runs])
            ratios = []
            for mine, their in zip(runs, theirs):
                a, b = mine.get("msgs_per_s"), their.get("msgs_per_s")
                if a and b:
                    ratios.append(a / b)
            errors = [r["error"][:80] for r in runs if "error" in r]
            lines.append(
                f"| {clients} | {name} | {fmt(rate)} | "
                f"{fmt(median(ratios), '{:.2f}') if name != 'websocat' else ''} | "
                f"{fmt(median([r.get('lost_pct') for r in runs]), '{:.2f}')} | "
                f"{fmt(median([r.get('ended') for r in runs]))} | "
                f"{fmt(median([r.get('program_lines_per_s') for r in runs]))} | "
                f"{fmt(median([r.get('p50_ms') for r in runs]), '{:.1f}')} | "
                f"{fmt(median([r.get('p99_ms') for r in runs]), '{:.1f}')} | "
                f"{fmt(median([r.get('peak_rss_mib') for r in runs]), '{:.1f}')} |"
                + (f" errors: {'; '.join(errors)}" if errors else ""))
    if args.idle:
        lines.append("")
        lines.append(f"Idle: {args.idle} clients that only listen; medians of {args.runs} runs.")
        lines.append("")
        lines.append("| server | RSS per client KiB | daemon RSS with all MiB | time to connect all s "
                     "| still connected |")
        lines.append("|---|---|---|---|---|")
        for name in names:
            runs = results.get(("idle", args.idle, name), [])
            errors = [r["error"][:80] for r in runs if "error" in r]
            lines.append(
                f"| {name} | {fmt(median([r.get('rss_per_client_kib') for r in runs]), '{:.2f}')} | "
                f"{fmt(median([r.get('held_rss_mib') for r in runs]), '{:.1f}')} | "
                f"{fmt(median([r.get('open_s') for r in runs]), '{:.2f}')} | "
                f"{fmt(median([r.get('alive_at_end') for r in runs]))} |"
                + (f" errors: {'; '.join(errors)}" if errors else ""))
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
        with open(args.out + ".json", "w") as f:
            json.dump({f"{k[0]} {k[1]} {k[2]}": v for k, v in results.items()}, f, indent=1)


if __name__ == "__main__":
    main()
