#!/usr/bin/env python3
"""HTTP/2 benchmarks of our websocketd: HTTP/2 against HTTP/1.1 on the same build, the
same machine and in the same repetition (the order alternates between repetitions).

    bench/h2.py [--ours PATH] [--runs N] [--smoke] [--out FILE]

1. wss:// sessions per second: each session (open, receive `echo hello`'s line, close)
   as a stream of one HTTP/2 connection that exists before the clock starts
   (loadgen h2-handshake), against each on a new HTTP/1.1 TLS connection (loadgen
   handshake over wss://), one at a time and 50 at a time.
2. Memory per idle WebSocket: 1,000 `cat` sessions held open, over HTTP/2 (100 streams on
   each of 10 TLS connections, loadgen h2-scale) and over HTTP/1.1 (1,000 TLS
   connections, loadgen scale); the daemon's RSS growth divided by 1,000.
3. Static files: GET of a 1 KiB and a 1 MiB file with 50 connections for 5 s, h2load
   over h2c (one request in flight a connection, as wrk), h2load with 50 streams on one
   connection, wrk over HTTP/1.1, and h2load --h1 (the same client over HTTP/1.1).

Server on core 0, clients on core 1, as bench/run.py (whose plumbing this reuses).
Python 3 standard library only. See docs/benchmarks.md.
"""

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as base  # noqa: E402  (bench/run.py)


def session_cases(smoke):
    count_1, count_50 = (50, 100) if smoke else (2000, 5000)
    cases = []
    for conc, count in ((1, count_1), (50, count_50)):
        for command in ("h2-handshake", "handshake"):
            cases.append(base.Case("h2", f"{command} c={conc}", ["echo", "hello"],
                                   ["--concurrency", conc, "--count", count], [],
                                   command=command))
    return cases


def memory_cases(smoke):
    n = 100 if smoke else 1000
    hold = ["--hold-seconds", 60]
    return [
        base.Case("h2", "h2-scale", base.CAT, ["--connections", n, "--parallel", 100, *hold],
                  [], server_flags=["--maxforks=0"], hold=True, command="h2-scale"),
        base.Case("h2", "scale", base.CAT, ["--connections", n, "--parallel", 100, *hold],
                  [], server_flags=["--maxforks=0"], hold=True, command="scale"),
    ]


def parse_h2load(text):
    """requests/s, MiB/s and the request counts of h2load's summary."""
    r = {}
    m = re.search(r"finished in ([\d.]+)(ms|s), ([\d.]+) req/s, ([\d.]+)([KMG]?)B/s", text)
    if m:
        r["seconds"] = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
        r["requests_per_s"] = float(m.group(3))
        r["mib_per_s"] = float(m.group(4)) * base.BINARY_UNITS[m.group(5)] / (1 << 20)
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored", text)
    if m:
        r["requests"], r["failed"] = int(m.group(4)), int(m.group(5)) + int(m.group(6))
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if m:
        r["non_2xx"] = sum(int(g) for g in m.groups()[1:])
    m = re.search(r"Application protocol: (\S+)", text)
    if m:
        r["protocol"] = m.group(1)
    return r


def timed(argv, limit):
    """Runs a client on core 1; returns (stdout, return code, CPU seconds, wall seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(["taskset", "-c", base.CLIENT_CORE, *argv],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=limit)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return done.stdout.decode(errors="replace"), done.returncode, cpu, wall


def static_runs(port, path, seconds):
    """The four static-file loads against one running server; a dict per client."""
    url = f"http://127.0.0.1:{port}/{path}"
    limit = seconds + 30
    results = {}
    for name, argv in (
        ("h2load h2c, 50 conns", ["h2load", "-c50", "-m1", "-t1", f"-D{seconds}", url]),
        ("h2load h2c, 1 conn x 50 streams", ["h2load", "-c1", "-m50", "-t1", f"-D{seconds}", url]),
        ("h2load --h1, 50 conns", ["h2load", "--h1", "-c50", "-m1", "-t1", f"-D{seconds}", url]),
        ("wrk HTTP/1.1, 50 conns", ["wrk", "-t1", "-c50", f"-d{seconds}s", "--latency", url]),
    ):
        out, code, cpu, wall = timed(argv, limit)
        r = base.parse_wrk(out) if argv[0] == "wrk" else parse_h2load(out)
        r["client_cpu_s"], r["wall_s"] = cpu, wall
        if code != 0 or "requests_per_s" not in r:
            r["error"] = f"{argv[0]} exited {code}: {out[-300:]}"
        elif r.get("failed") or r.get("non_2xx") or r.get("non_2xx_3xx"):
            r["error"] = f"{argv[0]} saw failed or non-2xx requests"
        results[name] = r
    return results


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def cell(value, fmt="{:.1f}"):
    return "–" if value is None else fmt.format(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ours", default=base.DEFAULT_OURS)
    parser.add_argument("--loadgen", default=base.DEFAULT_LOADGEN)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    args.theirs = "none"
    if args.smoke:
        args.runs = 1
    base.ensure_binaries(args)
    for command, package in (("openssl", "openssl"), ("wrk", "wrk"), ("h2load", "nghttp2-client")):
        if not base.ensure_tool(command, package, args.smoke):
            sys.exit(f"{command} is needed (Debian package {package})")
    base.raise_nofile(4096)
    fixtures = base.Fixtures()
    fixtures.make_pki()
    fixtures.make_http()
    seconds = 1 if args.smoke else 5
    lines = []
    failures = []
    try:
        sessions = session_cases(args.smoke)
        memory = memory_cases(args.smoke)
        sess = {c.name: [] for c in sessions}
        mem = {c.name: [] for c in memory}
        static = {}
        for rep in range(args.runs):
            flip = rep % 2 == 1
            for group, store in ((sessions, sess), (memory, mem)):
                for pair in (group[i:i + 2] for i in range(0, len(group), 2)):
                    for case in (reversed(pair) if flip else pair):
                        r = base.run_one(args.ours, args.loadgen, case, fixtures, secure=True)
                        store[case.name].append(r)
                        if "error" in r:
                            failures.append(f"{case.name}: {r['error']}")
            static_case = base.Case("h2", "static", [], [], [],
                                    server_flags=fixtures.http_flags)
            server = base.Server(args.ours, static_case)
            try:
                server.wait_ready()
                for path in ("1k.bin", "1m.bin"):
                    for name, r in static_runs(server.port, path, seconds).items():
                        static.setdefault((path, name), []).append(r)
                        if "error" in r:
                            failures.append(f"{path} {name}: {r['error']}")
            finally:
                server.stop()

        def ratio(a_runs, b_runs, key, higher=True):
            ratios = []
            for a, b in zip(a_runs, b_runs):
                x, y = a.get(key), b.get(key)
                if x and y and "error" not in a and "error" not in b:
                    ratios.append(x / y if higher else y / x)
            return median(ratios)

        lines.append("| load | metric | HTTP/2 | HTTP/1.1 | HTTP/2 ÷ HTTP/1.1 (↑) or HTTP/1.1 ÷ HTTP/2 (↓) |")
        lines.append("|---|---|---|---|---|")
        for conc in (1, 50):
            h2, h1 = sess[f"h2-handshake c={conc}"], sess[f"handshake c={conc}"]
            for key, label, higher, fmt in (("conns_per_s", "sessions/s ↑", True, "{:.0f}"),
                                            ("p50_ms", "p50 ms ↓", False, "{:.2f}"),
                                            ("p99_ms", "p99 ms ↓", False, "{:.2f}")):
                lines.append(f"| wss:// sessions, {conc} at a time | {label} | "
                             f"{cell(median(r.get(key) for r in h2), fmt)} | "
                             f"{cell(median(r.get(key) for r in h1), fmt)} | "
                             f"{cell(ratio(h2, h1, key, higher), '{:.2f}')} |")
        h2, h1 = mem["h2-scale"], mem["scale"]
        n = memory[0].connections
        lines.append(f"| {n} idle wss:// sessions | daemon RSS KiB per session ↓ | "
                     f"{cell(median(r.get('rss_per_conn_kib') for r in h2))} | "
                     f"{cell(median(r.get('rss_per_conn_kib') for r in h1))} | "
                     f"{cell(ratio(h2, h1, 'rss_per_conn_kib', False), '{:.2f}')} |")
        lines.append(f"| {n} idle wss:// sessions | daemon fds per session ↓ | "
                     f"{cell(median(r.get('fds_per_conn') for r in h2), '{:.2f}')} | "
                     f"{cell(median(r.get('fds_per_conn') for r in h1), '{:.2f}')} | |")
        lines.append("")
        lines.append("| file | client | requests/s ↑ | MiB/s ↑ | client CPU s | ÷ wrk HTTP/1.1 (requests/s) |")
        lines.append("|---|---|---|---|---|---|")
        for path in ("1k.bin", "1m.bin"):
            wrk = static[(path, "wrk HTTP/1.1, 50 conns")]
            for name in ("h2load h2c, 50 conns", "h2load h2c, 1 conn x 50 streams",
                         "h2load --h1, 50 conns", "wrk HTTP/1.1, 50 conns"):
                runs = static[(path, name)]
                lines.append(f"| /{path} | {name} | "
                             f"{cell(median(r.get('requests_per_s') for r in runs), '{:.0f}')} | "
                             f"{cell(median(r.get('mib_per_s') for r in runs))} | "
                             f"{cell(median(r.get('client_cpu_s') for r in runs), '{:.2f}')} | "
                             f"{cell(ratio(runs, wrk, 'requests_per_s'), '{:.2f}')} |")
    finally:
        fixtures.cleanup()
    text = "\n".join(lines)
    print(text)
    if failures:
        print("\nfailures:\n" + "\n".join(failures), file=sys.stderr)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
