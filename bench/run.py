#!/usr/bin/env python3
"""Benchmark runner: our websocketd against Debian's websocketd 0.4.1.

For every scenario and repetition it starts each server in turn (the order alternates
between repetitions) with the same flags and program, pinned with its children to core 0,
runs bench/loadgen pinned to core 1, and records the load generator's JSON plus the
daemon's memory. The table gives per-server medians and the median of the ratios taken
within each repetition; on a shared, noisy machine only those ratios are comparable
between runs, never absolute figures.

    bench/run.py [--ours PATH] [--theirs PATH|none] [--also NAME=PATH ...]
                 [--scenarios a,b,...] [--runs N] [--ours-flags FLAGS] [--theirs-flags FLAGS]
                 [--smoke] [--out FILE]

--ours-flags / --theirs-flags add daemon flags to one side (after the runner's own, so
they win): with --theirs pointing at our own binary, the ratio column is the cost of a
feature, e.g. `--theirs target/release/websocketd --ours-flags=--metrics=127.0.0.1:0`.

--also adds servers to every scenario, each with its own column and ratio (ours against
it): e.g. `--also ceiling=target/release/ceiling` (the in-process echo server of
bench/loadgen/src/bin/ceiling.rs) and `--also previous=/path/to/an/older/websocketd`.

Three groups run only when named (`--scenarios tls,http,compress`) or with --smoke: `tls`
measures each server over ws:// and wss:// (a throwaway CA and certificate made with the
openssl CLI), `http` measures static files and a CGI script with wrk, `compress` streams
log lines to a client with and without permessage-deflate (the --compress rows run on every
server whose --help lists --compress; the other compression levels on ours only).

Python 3 standard library only. See docs/benchmarks.md.
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import queue
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OURS = os.path.join(ROOT, "target", "release", "websocketd")
DEFAULT_LOADGEN = os.path.join(ROOT, "target", "release", "loadgen")
DEFAULT_THEIRS = "/usr/bin/websocketd"
SERVER_CORE = "0"
CLIENT_CORE = "1"

SCENARIOS = [
    "handshake",
    "echo-latency",
    "echo-throughput",
    "push",
    "binary",
    "scale",
    "sustained",
    "backpressure",
]
# The scenarios an echo server without a program can serve (`--also ceiling=PATH`).
CEILING_SCENARIOS = {"echo-latency", "echo-throughput", "binary", "sustained", "scale"}
# Not in the default list (a full run keeps its length); named with --scenarios, and
# part of --smoke.
EXTRA_SCENARIOS = ["tls", "http", "compress"]

CAT = ["cat"]
SLOW_CONSUMER = ["sh", "-c", 'while read l; do echo "$l"; sleep 0.1; done']
# compress: lines of a real log (dpkg's, or this script if there is none), repeated.
LOG_FILE = "/var/log/dpkg.log" if os.path.exists("/var/log/dpkg.log") else os.path.abspath(__file__)
LOG_SOURCE = """
import sys
path, count = sys.argv[1], int(sys.argv[2])
lines = [l for l in open(path, "rb").read().splitlines(True) if l.strip()]
block = b"".join(lines)
while count >= len(lines):
    sys.stdout.buffer.write(block)
    count -= len(lines)
sys.stdout.buffer.write(b"".join(lines[:count]))
sys.stdout.buffer.flush()
"""


# Writes LINES lines of BYTES bytes (newline included) in writes of about 1 MiB, so the
# producer costs little next to the daemon it feeds (`yes | head` scans every byte twice).
PUSH_SOURCE = """
import sys
size, count = int(sys.argv[1]), int(sys.argv[2])
line = b"x" * (size - 1) + b"\\n"
per_write = max(1, (1 << 20) // size)
block = line * per_write
while count >= per_write:
    sys.stdout.buffer.write(block)
    count -= per_write
sys.stdout.buffer.write(line * count)
sys.stdout.buffer.flush()
"""


def push_program(line_bytes, lines):
    """A program printing `lines` lines of exactly `line_bytes` bytes, newline included."""
    return ["python3", "-c", PUSH_SOURCE, str(line_bytes), str(lines)]


class Metric:
    def __init__(self, key, label, higher_is_better, source="loadgen", fmt="{:.1f}"):
        self.key = key
        self.label = label
        self.up = higher_is_better
        self.source = source  # "loadgen" or "server" (measured by this script)
        self.fmt = fmt


PEAK_RSS = Metric("peak_rss_mib", "daemon peak RSS MiB", False, "server", "{:.1f}")


class HttpLoad:
    """A wrk run: GET /PATH on `connections` connections for `seconds`; `expect` is the
    body (bytes) or its length (int) that one checking request must get first."""

    def __init__(self, path, connections, seconds, expect):
        self.path = path
        self.connections = connections
        self.seconds = seconds
        self.expect = expect


class Case:
    """One row group of the table: a scenario with fixed parameters."""

    def __init__(self, scenario, name, program, loadgen_args, metrics, server_flags=(),
                 timeout=300, hold=False, command=None, http_load=None, only=None,
                 needs_compress=False):
        self.scenario = scenario
        self.name = name
        self.program = program
        self.loadgen_args = [str(a) for a in loadgen_args]
        self.metrics = list(metrics) + [PEAK_RSS]
        self.server_flags = list(server_flags)
        self.timeout = timeout
        self.hold = hold  # scale: the loadgen holds its connections until told to close
        self.command = command or scenario  # the loadgen subcommand
        self.http_load = http_load  # http: measured with wrk instead of the loadgen
        self.only = only  # the server names that can run it (None: every server)
        self.needs_compress = needs_compress  # only servers that have --compress run it
        self.connections = 0
        if "--connections" in self.loadgen_args:
            self.connections = int(self.loadgen_args[self.loadgen_args.index("--connections") + 1])


def build_cases(smoke, http_flags=()):
    """The scenario list; `smoke` shrinks every workload to a few hundred messages.
    `http_flags` are the http scenario's server flags (its temporary directories)."""
    s = smoke
    lat_us = [Metric("p50_us", "p50 µs", False), Metric("p99_us", "p99 µs", False)]
    handshake_metrics = [Metric("conns_per_s", "connections/s", True, fmt="{:.0f}"),
                         Metric("p50_ms", "p50 ms", False, fmt="{:.2f}"),
                         Metric("p99_ms", "p99 ms", False, fmt="{:.2f}")]
    throughput_metrics = [Metric("msgs_per_s", "msgs/s", True, fmt="{:.0f}")]
    cases = []
    for conc, count, small in ((1, 2000, 20), (50, 5000, 100)):
        cases.append(Case(
            "handshake", f"handshake c={conc}", ["echo", "hello"],
            ["--concurrency", conc, "--count", small if s else count], handshake_metrics))
    for size in (16, 64):
        cases.append(Case(
            "echo-latency", f"echo latency {size} B, cat", CAT,
            ["--count", 300 if s else 20000, "--size", size], lat_us))
    for conns in (1, 50):
        cases.append(Case(
            "echo-throughput", f"echo throughput, {conns} conn", CAT,
            ["--connections", conns, "--size", 64, "--window", 64,
             "--seconds", 0.5 if s else 5], throughput_metrics))
    for size in (8, 100, 4096):
        lines = 10_000 if s else 1_000_000
        cases.append(Case(
            "push", f"push {size} B lines", push_program(size, lines),
            ["--expect-lines", lines],
            [Metric("msgs_per_s", "lines/s", True, fmt="{:.0f}"),
             Metric("mb_per_s", "MB/s", True)]))
    for k in (1, 2, 8):
        cases.append(Case(
            "binary", f"binary 64 KiB, {k} in flight", CAT,
            ["--size", 65536, "--in-flight", k, "--count", 20 if s else 2000,
             "--stall-seconds", 1 if s else 5],
            [Metric("mb_per_s", "MB/s", True)], server_flags=["--binary"]))
    for n in ((50,) if s else (1000, 4000)):
        cases.append(Case(
            "scale", f"scale {n} conns", CAT,
            ["--connections", n, "--parallel", 200, "--hold-seconds", 120],
            [Metric("open_s", "time to open all s", False, fmt="{:.2f}"),
             Metric("rss_per_conn_kib", "daemon RSS per conn KiB", False, "server"),
             Metric("pss_total_mib", "PSS daemon+children MiB", False, "server"),
             Metric("fds_per_conn", "daemon fds per conn", False, "server")],
            server_flags=["--maxforks=0"], hold=True))
    cases.append(Case(
        "sustained", "sustained 50 conns × 100 msg/s", CAT,
        ["--connections", 50, "--rate", 100, "--seconds", 1 if s else 10],
        [Metric("p50_ms", "p50 ms", False, fmt="{:.2f}"),
         Metric("p95_ms", "p95 ms", False, fmt="{:.2f}"),
         Metric("p99_ms", "p99 ms", False, fmt="{:.2f}")]))
    cases.append(Case(
        "backpressure", "backpressure, slow consumer", SLOW_CONSUMER,
        ["--rate", 1000, "--seconds", 1 if s else 10, "--drain", 0.5 if s else 5],
        [Metric("sent", "messages sent", True, fmt="{:.0f}"),
         Metric("received", "echoes received", True, fmt="{:.0f}")]))
    lines = 5_000 if s else 200_000
    # The plain stream (every server), --compress at the default level (every server that
    # has the flag), and ours at the other levels.
    for deflate, level in ((False, None), (True, None), (True, 3), (True, 6), (True, 9)):
        if s and level:
            continue
        flags = ["--compress"] if deflate else []
        if level:
            flags.append(f"--compresslevel={level}")
        cases.append(Case(
            "compress", "log stream" + (", " + " ".join(flags) if flags else ""),
            ["python3", "-c", LOG_SOURCE, LOG_FILE, str(lines)],
            ["--expect-lines", lines, "--deflate", int(deflate)],
            [Metric("msgs_per_s", "lines/s", True, fmt="{:.0f}"),
             Metric("wire_bytes_per_msg", "wire bytes per line", False, fmt="{:.1f}")],
            server_flags=flags, command="log-stream",
            only=("ours",) if level else None, needs_compress=deflate))
    # tls: the same loads as handshake and echo-throughput; each server runs them over
    # ws:// and over wss:// (see run_scenarios).
    for conc, count, small in ((1, 2000, 20), (50, 5000, 100)):
        cases.append(Case(
            "tls", f"tls handshake c={conc}", ["echo", "hello"],
            ["--concurrency", conc, "--count", small if s else count], handshake_metrics,
            command="handshake"))
    cases.append(Case(
        "tls", "tls echo throughput, 1 conn", CAT,
        ["--connections", 1, "--size", 64, "--window", 64, "--seconds", 0.5 if s else 5],
        throughput_metrics, command="echo-throughput"))
    seconds = 1 if s else 5
    for path, conns, expect in (("1k.bin", 50, 1024), ("1m.bin", 50, 1 << 20),
                                ("hello.cgi", 10, b"hello\n")):
        cases.append(Case(
            "http", f"http GET /{path}, {conns} conns", [], [],
            [Metric("requests_per_s", "requests/s", True, fmt="{:.0f}"),
             Metric("mib_per_s", "transfer MiB/s", True, fmt="{:.2f}"),
             Metric("p50_ms", "p50 ms", False, fmt="{:.2f}"),
             Metric("p99_ms", "p99 ms", False, fmt="{:.2f}")],
            server_flags=http_flags, http_load=HttpLoad(path, conns, seconds, expect)))
    if s:
        for c in cases:
            c.timeout = 30
    return cases


# ---------------------------------------------------------------------------------------
# processes


def raise_nofile(needed):
    """Raises RLIMIT_NOFILE (inherited by both servers and the load generator) to the hard
    limit. If that is below `needed` (the scale scenarios' file descriptors) and we are
    root, raises the hard limit too. Returns (limit, note)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    note = ""
    if hard != resource.RLIM_INFINITY and hard < needed and os.geteuid() == 0:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            note = f" (hard limit raised from {hard})"
            soft = hard = needed
        except (ValueError, OSError):
            pass
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard, note


def proc_stat(pid):
    """(session, starttime, state) from /proc/PID/stat, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): session is field 6, starttime field 22.
    return int(fields[3]), int(fields[19]), fields[0]


def wait_port(port, timeout=15):
    """Returns once something accepts connections on 127.0.0.1:port; raises after timeout s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on port {port}")


def end_session(proc, grace):
    """Stops a daemon started as a session leader: SIGTERM, SIGKILL after `grace` seconds,
    then SIGKILL for every process its session still holds (programs it left behind)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for pid, _ in session_members(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def session_members(sid):
    """Live (not zombie) processes of session `sid` as (pid, starttime). The daemon is
    started as a session leader, so this is the daemon and every process it started, even
    those orphaned by its exit."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st and st[0] == sid and st[2] not in ("Z", "X"):
                out.append((int(entry), st[1]))
    return out


def read_kib(path, field):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, case, extra_flags=()):
        self.port = free_port()
        self.log = tempfile.TemporaryFile()
        argv = (["taskset", "-c", SERVER_CORE, binary, f"--port={self.port}",
                 "--address=127.0.0.1", "--loglevel=error"]
                + case.server_flags + list(extra_flags) + case.program)
        self.argv = argv
        # A new session: every process the daemon starts stays findable by session id.
        # At --loglevel=error both daemons are silent unless something fails; their log
        # (stdout) and stderr go to a file that failures quote.
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        self.pid = self.proc.pid

    def wait_ready(self, limit=10.0):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode} at start: "
                                   + self.stderr_tail())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"server did not accept on port {self.port} within {limit} s")

    def rss_kib(self):
        return read_kib(f"/proc/{self.pid}/status", "VmRSS")

    def pss_and_children(self):
        members = session_members(self.pid)
        total = 0
        for pid, _ in members:
            total += read_kib(f"/proc/{pid}/smaps_rollup", "Pss") or 0
        return total, len(members) - 1

    def fd_count(self):
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return None

    def stderr_tail(self, limit=2000):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-limit:]

    def first_log_lines(self, count=2, width=300):
        """The first distinct lines of the daemon's output (its error messages)."""
        self.log.seek(0)
        seen = []
        for raw in self.log:
            line = raw.decode(errors="replace").strip()
            # Drop the per-session prefix (time, ids) so repeats collapse.
            msg = line.rsplit("|", 1)[-1].strip()
            if msg and msg not in seen:
                seen.append(msg)
                if len(seen) == count:
                    break
        return "; ".join(m[:width] for m in seen)

    def stop(self):
        """SIGTERM, SIGKILL after 2 s, then kill whatever the daemon left behind.
        Returns a warning string if something survived, else None."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        # Programs outlive a daemon that exits without stopping them (0.4.1 does on SIGTERM).
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline and session_members(self.pid):
            time.sleep(0.05)
        for _ in range(5):
            left = session_members(self.pid)
            if not left:
                break
            for pid, start in left:
                st = proc_stat(pid)
                if st and st[:2] == (self.pid, start):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            time.sleep(0.1)
        self.log.close()
        left = session_members(self.pid)
        return f"{len(left)} processes left after stopping the server" if left else None


class RssSampler(threading.Thread):
    def __init__(self, server, period=0.2):
        super().__init__(daemon=True)
        self.server = server
        self.period = period
        self.peak = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            rss = self.server.rss_kib()
            if rss:
                self.peak = max(self.peak, rss)
            self.halt.wait(self.period)

    def stop(self):
        self.halt.set()
        self.join()
        rss = self.server.rss_kib()
        if rss:
            self.peak = max(self.peak, rss)
        return self.peak


def parse_report(out):
    for line in reversed(out.decode(errors="replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    return None


def run_loadgen(loadgen, case, url, server, ca=None):
    """Runs one loadgen invocation; returns (report dict, extra server metrics)."""
    argv = ["taskset", "-c", CLIENT_CORE, loadgen, case.command, "--url", url,
            *(["--ca", ca] if ca else []), *case.loadgen_args,
            "--max-seconds", str(case.timeout)]
    extra = {}
    if not case.hold:
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=case.timeout + 10)
        except subprocess.TimeoutExpired:
            return {"error": f"loadgen did not finish within {case.timeout + 10} s"}, extra
        report = parse_report(done.stdout)
        if report is None:
            report = {"error": f"loadgen exited {done.returncode} without a report: "
                               + done.stderr.decode(errors="replace")[-500:]}
        elif done.returncode != 0 and "error" not in report:
            report["error"] = f"loadgen exited {done.returncode}"
        return report, extra

    # scale: wait for READY on stderr, measure, then release the connections.
    idle_rss = server.rss_kib() or 0
    idle_fds = server.fd_count() or 0
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    lines = queue.Queue()
    stdout_chunks = []

    def pump_stderr():
        for raw in proc.stderr:
            lines.put(raw.decode(errors="replace").strip())
        lines.put(None)

    def pump_stdout():
        stdout_chunks.append(proc.stdout.read())

    threads = [threading.Thread(target=pump_stderr, daemon=True),
               threading.Thread(target=pump_stdout, daemon=True)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + case.timeout
    ready = False
    stderr_seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        if line == "READY":
            ready = True
            break
        stderr_seen.append(line)
    if ready:
        n = case.connections
        time.sleep(0.5)  # let the daemon settle after the last echo
        rss = server.rss_kib() or 0
        pss, children = server.pss_and_children()
        fds = server.fd_count() or 0
        extra = {"rss_per_conn_kib": (rss - idle_rss) / n, "pss_total_mib": pss / 1024,
                 "fds_per_conn": (fds - idle_fds) / n, "children": children,
                 "idle_rss_kib": idle_rss, "held_rss_kib": rss}
        try:
            proc.stdin.write(b"\n")
            proc.stdin.close()
        except OSError:
            pass
    try:
        proc.wait(timeout=max(1.0, deadline - time.monotonic()) + 10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return {"error": f"loadgen did not finish within {case.timeout + 10} s"}, extra
    for t in threads:
        t.join(5)
    report = parse_report(b"".join(stdout_chunks))
    if report is None:
        report = {"error": f"loadgen exited {proc.returncode} without a report: "
                           + " | ".join(stderr_seen)[-500:]}
    elif proc.returncode != 0 and "error" not in report:
        report["error"] = f"loadgen exited {proc.returncode}"
    elif not ready and "error" not in report:
        report["error"] = "loadgen never reported READY"
    return report, extra


def http_get_check(port, load):
    """One GET of the path wrk will load, on its own connection: None if the response is
    200 with the expected body, else what is wrong."""
    what = f"GET /{load.path}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/" + load.path)
        resp = conn.getresponse()
        body = resp.read()
    except (OSError, http.client.HTTPException) as e:
        return f"{what}: {e}"
    finally:
        conn.close()
    if resp.status != 200:
        return f"{what}: status {resp.status} {resp.reason}"
    if isinstance(load.expect, int) and len(body) != load.expect:
        return f"{what}: a body of {len(body)} bytes, expected {load.expect}"
    if isinstance(load.expect, bytes) and body != load.expect:
        return f"{what}: body {body[:100]!r}, expected {load.expect!r}"
    return None


TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
BINARY_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_wrk(text):
    """The figures of wrk's report (run with --latency); missing ones are left out."""
    r = {}
    m = re.search(r"^Requests/sec:\s*([\d.]+)", text, re.M)
    if m:
        r["requests_per_s"] = float(m.group(1))
    m = re.search(r"^Transfer/sec:\s*([\d.]+)([KMGT]?)B", text, re.M)
    if m:
        r["mib_per_s"] = float(m.group(1)) * BINARY_UNITS[m.group(2)] / (1 << 20)
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+)([KMGT]?)B read", text)
    if m:
        r["requests"] = int(m.group(1))
        r["seconds"] = float(m.group(2)) * TIME_UNITS_MS[m.group(3)] / 1e3
        r["bytes_read"] = round(float(m.group(4)) * BINARY_UNITS[m.group(5)])
    for pct in (50, 75, 90, 99):
        m = re.search(rf"^\s*{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
        if m:
            r[f"p{pct}_ms"] = float(m.group(1)) * TIME_UNITS_MS[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    r["non_2xx_3xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                  text)
    if m:
        r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                      map(int, m.groups())))
    return r


def run_wrk(case, server):
    """One wrk run against `server` after a checking request; returns a report dict in
    the loadgen's shape (client_cpu_s is wrk's user + system time)."""
    load = case.http_load
    problem = http_get_check(server.port, load)
    if problem:
        return {"error": problem}
    url = f"http://127.0.0.1:{server.port}/{load.path}"
    argv = ["taskset", "-c", CLIENT_CORE, "wrk", "-t1", f"-c{load.connections}",
            f"-d{load.seconds}s", "--latency", url]
    limit = load.seconds + 30
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=limit)
    except subprocess.TimeoutExpired:
        return {"error": f"wrk did not finish within {limit} s"}
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = done.stdout.decode(errors="replace")
    report = parse_wrk(out)
    report["client_cpu_s"] = (after.ru_utime + after.ru_stime
                              - before.ru_utime - before.ru_stime)
    report["wall_s"] = wall
    errors = report.get("socket_errors", {})
    if done.returncode != 0:
        report["error"] = (f"wrk exited {done.returncode}: "
                           + done.stderr.decode(errors="replace")[-500:])
    elif "requests_per_s" not in report or "p99_ms" not in report:
        report["error"] = "no figures in wrk's output: " + out[-500:]
    elif report["non_2xx_3xx"]:
        report["error"] = f"{report['non_2xx_3xx']} responses were not 2xx or 3xx"
    elif any(errors.values()):
        report["error"] = "wrk socket errors: " + ", ".join(
            f"{k} {v}" for k, v in errors.items() if v)
    return report


def run_one(binary, loadgen, case, fixtures=None, secure=False, flags=()):
    """One server run: start, wait, load, measure, stop. Returns a result dict. `secure`:
    the server gets --ssl and the loadgen a wss:// URL (tls); `flags` are extra daemon
    flags (--ours-flags/--theirs-flags)."""
    extra_flags = (fixtures.tls_flags if secure else []) + list(flags)
    server = Server(binary, case, extra_flags)
    result = {}
    try:
        server.wait_ready()
        sampler = RssSampler(server)
        sampler.start()
        if case.http_load:
            report, extra = run_wrk(case, server), {}
        else:
            scheme = "wss" if secure else "ws"
            report, extra = run_loadgen(loadgen, case, f"{scheme}://127.0.0.1:{server.port}/",
                                        server, ca=fixtures.ca if secure else None)
        peak = sampler.stop()
        result.update(report)
        result.update(extra)
        result["peak_rss_mib"] = peak / 1024
        if server.proc.poll() is not None:
            result.setdefault("error", f"server exited with {server.proc.returncode} "
                                       "during the run: " + server.stderr_tail(500))
        elif "error" in result:
            log = server.first_log_lines()
            if log:
                result["error"] += f" [server log: {log}]"
    except RuntimeError as e:
        result["error"] = str(e)
    finally:
        warning = server.stop()
        if warning:
            result["leftover"] = warning
    return result


# ---------------------------------------------------------------------------------------
# table


def fmt_value(metric, values, stalls, failures):
    if not values:
        if stalls:
            return "stall" if stalls == 1 else f"stall ×{stalls}"
        return "error" if failures else "–"
    text = metric.fmt.format(statistics.median(values))
    notes = []
    if stalls:
        notes.append(f"{stalls} stalled")
    if failures:
        notes.append(f"{failures} failed")
    return text + (f" ({', '.join(notes)})" if notes else "")


def cpu_text(runs):
    ok = [r for r in runs if r and "client_cpu_s" in r and "wall_s" in r]
    if not ok:
        return "–"
    cpu = statistics.median(r["client_cpu_s"] for r in ok)
    wall = statistics.median(r["wall_s"] for r in ok)
    return f"{cpu:.2f} s of {wall:.1f} s"


def metric_value(run, metric):
    if not run or "error" in run or run.get("stalled"):
        return None
    v = run.get(metric.key)
    return v if isinstance(v, (int, float)) else None


def summary_cell(metric, runs):
    """The median of a metric over runs, with stalls and failures noted."""
    vals = [v for v in (metric_value(r, metric) for r in runs) if v is not None]
    stalls = sum(1 for r in runs if r and r.get("stalled") and "error" not in r)
    fails = sum(1 for r in runs if not r or "error" in r)
    return fmt_value(metric, vals, stalls, fails)


def ratio_cell(a_runs, b_runs, metric, oriented=True):
    """The median of a/b over the repetitions (runs at the same index). `oriented`: a÷b
    for a higher-is-better metric and b÷a otherwise, so that >1 means a did better."""
    ratios = []
    for a, b in zip(a_runs, b_runs):
        va, vb = metric_value(a, metric), metric_value(b, metric)
        if va is None or vb is None:
            continue
        num, den = (vb, va) if oriented and not metric.up else (va, vb)
        if den > 0:
            ratios.append(num / den)
    return f"{statistics.median(ratios):.2f}" if ratios else "–"


def markdown(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def metric_label(m):
    return f"{m.label} {'↑' if m.up else '↓'}"


def build_table(cases, results, have_theirs, theirs_label, also=()):
    head = ["scenario", "metric", "ours"]
    if have_theirs:
        head += [theirs_label, "ratio (↑ ours÷theirs, ↓ theirs÷ours; >1 = ours better)"]
    for name in also:
        head += [name, f"ours vs {name} (>1 = ours better)"]
    head += ["client CPU, ours"]
    if have_theirs:
        head += ["client CPU, theirs"]
    rows = []
    for case in cases:
        per = results.get(case.name)
        if per is None:
            continue
        ours, theirs = per["ours"], per.get("theirs", [])
        for i, m in enumerate(case.metrics):
            row = [case.name if i == 0 else "", metric_label(m), summary_cell(m, ours)]
            if have_theirs:
                row += [summary_cell(m, theirs), ratio_cell(ours, theirs, m)]
            for name in also:
                other = per.get(name, [])
                row += [summary_cell(m, other), ratio_cell(ours, other, m)]
            row.append(cpu_text(ours) if i == 0 else "")
            if have_theirs:
                row.append(cpu_text(theirs) if i == 0 else "")
            rows.append(row)
    return markdown(head, rows)


def compress_ratios(cases, results):
    """Each server with --compress (at each level) against itself without, within each
    repetition."""
    plain = results.get(cases[0].name, {})
    rate_metric, size_metric = cases[0].metrics[0], cases[0].metrics[1]
    lines = []
    for case in cases[1:]:
        for name, packed in results.get(case.name, {}).items():
            base = plain.get(name, [])
            rate = ratio_cell(packed, base, rate_metric, oriented=False)
            size = ratio_cell(base, packed, size_metric, oriented=False)
            what = case.name.split(", ", 1)[-1]
            lines.append(f"- {name} with `{what}` against {name} without: {rate}× the "
                         f"lines/s, {size}× fewer bytes on the wire")
    return ("Medians of per-repetition ratios:\n\n" + "\n".join(lines) + "\n")


def build_tls_table(cases, results, have_theirs):
    """tls: each server over ws:// and wss://; wss÷ws is the plain quotient of the two
    values, the last ratio compares the two servers over wss://."""
    head = ["scenario", "metric", "ours ws://", "ours wss://", "ours wss÷ws"]
    if have_theirs:
        head += ["theirs ws://", "theirs wss://", "theirs wss÷ws",
                 "ratio wss:// (↑ ours÷theirs, ↓ theirs÷ours; >1 = ours better)"]
    head += ["client CPU, ours wss://"]
    if have_theirs:
        head += ["client CPU, theirs wss://"]
    rows = []
    for case in cases:
        per = results.get(case.name)
        if per is None:
            continue
        for i, m in enumerate(case.metrics):
            row = [case.name if i == 0 else "", metric_label(m)]
            for name in ["ours"] + (["theirs"] if have_theirs else []):
                ws, wss = per[f"{name} ws"], per[f"{name} wss"]
                row += [summary_cell(m, ws), summary_cell(m, wss),
                        ratio_cell(wss, ws, m, oriented=False)]
            if have_theirs:
                row.append(ratio_cell(per["ours wss"], per["theirs wss"], m))
            row.append(cpu_text(per["ours wss"]) if i == 0 else "")
            if have_theirs:
                row.append(cpu_text(per["theirs wss"]) if i == 0 else "")
            rows.append(row)
    return markdown(head, rows)


def negotiated_text(results, cases):
    """What the TLS runs negotiated, per server, from the loadgen's reports."""
    seen = {}
    for case in cases:
        for name, runs in results.get(case.name, {}).items():
            if name.endswith(" wss"):
                for r in runs:
                    if r and r.get("tls"):
                        seen.setdefault(name[:-4], set()).add(r["tls"])
    return "; ".join(f"{name}: {', '.join(sorted(v))}" for name, v in seen.items()) or "–"


def machine_text():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), Linux {platform.release()}"


def version_of(binary):
    """The binary's --version line; for a Debian package build (whose line says
    DEVBUILD) the package version instead."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, timeout=10)
        line = (out.stdout or out.stderr).decode(errors="replace").strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        line = "unknown"
    if "DEVBUILD" in line or line == "unknown":
        try:
            owner = subprocess.run(["dpkg-query", "-S", os.path.realpath(binary)],
                                   capture_output=True, timeout=10)
            pkg = owner.stdout.decode().split(":", 1)[0].strip()
            ver = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg],
                                 capture_output=True, timeout=10).stdout.decode().strip()
            if pkg and ver:
                return f"{pkg} {ver} (Debian package)"
        except (OSError, subprocess.TimeoutExpired):
            pass
    return line


# ---------------------------------------------------------------------------------------
# main


def ensure_binaries(args):
    if (args.ours == DEFAULT_OURS and not os.path.exists(DEFAULT_OURS)) or \
            (args.loadgen == DEFAULT_LOADGEN and not os.path.exists(DEFAULT_LOADGEN)):
        print("building release binaries ...", file=sys.stderr)
        subprocess.run(["cargo", "build", "--release", "-p", "websocketd", "-p", "loadgen"],
                       cwd=ROOT, check=True)
    for path in (args.ours, args.loadgen):
        if not os.access(path, os.X_OK):
            sys.exit(f"not executable: {path}")
    if args.theirs == "none":
        return None
    if os.access(args.theirs, os.X_OK):
        return args.theirs
    if args.smoke or args.theirs != DEFAULT_THEIRS:
        print(f"note: {args.theirs} not found; running ours only", file=sys.stderr)
        return None
    if not apt_install("websocketd"):
        sys.exit("could not install Debian's websocketd (apt-get install websocketd)")
    return args.theirs


def apt_install(package):
    """apt-get install PACKAGE, after apt-get update if the first try fails. True if it
    worked."""
    print(f"installing the Debian package {package} ...", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", package]
    try:
        if subprocess.run(install, env=env, timeout=900).returncode == 0:
            return True
        if subprocess.run(["apt-get", "update"], env=env, timeout=900).returncode != 0:
            return False
        return subprocess.run(install, env=env, timeout=900).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_tool(command, package, smoke):
    """Installs `package` when `command` is missing. False if it is still missing in a
    smoke run (which then skips what needs it); a full run stops instead."""
    if shutil.which(command) or (apt_install(package) and shutil.which(command)):
        return True
    if smoke:
        print(f"note: {command} is missing and could not be installed; skipping what "
              "needs it", file=sys.stderr)
        return False
    sys.exit(f"{command} is required (Debian package {package})")


HELLO_CGI = """#!/bin/sh
echo "Content-Type: text/plain"
echo
echo hello
"""


class Fixtures:
    """Temporary files for the tls and http scenarios, under one directory that
    cleanup() removes."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="websocketd-bench-")
        self.ca = None  # the CA certificate the loadgen trusts
        self.tls_flags = []
        self.http_flags = []

    def make_pki(self):
        """A throwaway CA and a certificate for 127.0.0.1 signed by it, both ECDSA P-256
        (keys in PKCS#8 PEM), valid for two days."""
        d = os.path.join(self.dir, "pki")
        os.mkdir(d)

        def openssl(*argv):
            done = subprocess.run(["openssl", *argv], cwd=d, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=60)
            if done.returncode != 0:
                sys.exit(f"openssl {' '.join(argv)} failed: "
                         + done.stderr.decode(errors="replace")[-500:])

        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                "-subj", "/CN=websocketd benchmark CA")
        with open(os.path.join(d, "server.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
        openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr",
                "-subj", "/CN=127.0.0.1")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "server.pem", "-days", "2",
                "-extfile", "server.ext")
        self.ca = os.path.join(d, "ca.pem")
        self.tls_flags = ["--ssl", f"--sslcert={os.path.join(d, 'server.pem')}",
                          f"--sslkey={os.path.join(d, 'server.key')}"]

    def make_http(self):
        """static/1k.bin and static/1m.bin (random bytes), and cgi/hello.cgi; separate
        directories, so that no static file is taken for a CGI script."""
        static = os.path.join(self.dir, "static")
        cgi = os.path.join(self.dir, "cgi")
        os.mkdir(static)
        os.mkdir(cgi)
        for name, size in (("1k.bin", 1024), ("1m.bin", 1 << 20)):
            with open(os.path.join(static, name), "wb") as f:
                f.write(os.urandom(size))
        script = os.path.join(cgi, "hello.cgi")
        with open(script, "w") as f:
            f.write(HELLO_CGI)
        os.chmod(script, 0o755)
        self.http_flags = [f"--staticdir={static}", f"--cgidir={cgi}"]

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def shown(path):
    """A path as the table shows it: relative to the repository when inside it."""
    path = os.path.abspath(path)
    return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


def git_revision():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                             capture_output=True, timeout=10).stdout.decode().strip()
        return rev or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def has_compress(binary):
    """Whether a server's --help lists --compress (ours since permessage-deflate)."""
    try:
        out = subprocess.run([binary, "--help"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b"--compress" in out.stdout + out.stderr


def run_cases(cases, servers, loadgen, runs, fixtures, server_flags=None):
    """Every case, `runs` repetitions, each server (and for tls each server over ws://
    and wss://) in an order that alternates between repetitions. Returns (results,
    failures): results[case name][variant] is the list of per-repetition reports."""
    results = {}
    failures = []
    for case in cases:
        variants = [(name, binary, False) for name, binary in servers
                    if (case.only is None or name in case.only)
                    and (name != "ceiling" or case.scenario in CEILING_SCENARIOS)
                    and (not case.needs_compress or has_compress(binary))]
        if case.scenario == "tls":
            variants = [(f"{name} {scheme}", binary, scheme == "wss")
                        for name, binary in servers for scheme in ("ws", "wss")]
        per = {name: [] for name, _, _ in variants}
        for rep in range(runs):
            order = variants if rep % 2 == 0 else list(reversed(variants))
            for name, binary, secure in order:
                t = time.monotonic()
                flags = (server_flags or {}).get(name.split()[0], [])
                r = run_one(binary, loadgen, case, fixtures, secure, flags)
                per[name].append(r)
                status = ("ERROR " + r["error"]) if "error" in r else (
                    "stalled" if r.get("stalled") else "ok")
                if r.get("leftover"):
                    status += f" ({r['leftover']})"
                print(f"  {case.name:<32} run {rep + 1}/{runs} {name:<10} "
                      f"{time.monotonic() - t:6.1f} s  {status}", file=sys.stderr)
                if "error" in r or (name.startswith("ours") and r.get("stalled")):
                    failures.append(f"{case.name} / {name} / run {rep + 1}: "
                                    + r.get("error", "stalled"))
        results[case.name] = per
    return results, failures


RATIO_NOTE = ("Medians over the runs; the ratio column is the median of the ratios taken "
              "within each repetition (both servers back to back), so it is the figure to "
              "compare between machines and runs.")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ours", default=DEFAULT_OURS, help="our websocketd binary")
    p.add_argument("--theirs", default=DEFAULT_THEIRS,
                   help="the websocketd to compare with, or 'none'")
    p.add_argument("--also", action="append", default=[], metavar="NAME=PATH",
                   help="another server to measure in every scenario (repeatable)")
    p.add_argument("--loadgen", default=DEFAULT_LOADGEN, help="the load generator binary")
    p.add_argument("--scenarios",
                   help="comma-separated subset of: " + ", ".join(SCENARIOS + EXTRA_SCENARIOS)
                   + f" (default: all but {', '.join(EXTRA_SCENARIOS)}; with --smoke: all)")
    p.add_argument("--runs", type=int, default=3, help="repetitions per scenario")
    p.add_argument("--smoke", action="store_true",
                   help="every scenario once with tiny workloads; non-zero exit on failure")
    p.add_argument("--out", help="also write the table (Markdown) here, raw data to FILE.json")
    p.add_argument("--ours-flags", default="",
                   help="extra daemon flags for ours (one shell-quoted string)")
    p.add_argument("--theirs-flags", default="",
                   help="extra daemon flags for theirs (one shell-quoted string)")
    args = p.parse_args()
    server_flags = {"ours": shlex.split(args.ours_flags),
                    "theirs": shlex.split(args.theirs_flags)}

    if args.scenarios is None:
        wanted = SCENARIOS + EXTRA_SCENARIOS if args.smoke else list(SCENARIOS)
    else:
        wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SCENARIOS + EXTRA_SCENARIOS]
    if unknown:
        p.error(f"unknown scenarios: {', '.join(unknown)}")
    runs = 1 if args.smoke else max(1, args.runs)
    for tool in ("taskset",):
        if not shutil.which(tool):
            sys.exit(f"{tool} is required (util-linux)")

    theirs = ensure_binaries(args)
    for group, command in (("tls", "openssl"), ("http", "wrk")):
        if group in wanted and not ensure_tool(command, command, args.smoke):
            wanted.remove(group)
    fixtures = Fixtures()
    try:
        if "tls" in wanted:
            fixtures.make_pki()
        if "http" in wanted:
            fixtures.make_http()
        cases = [c for c in build_cases(args.smoke, fixtures.http_flags)
                 if c.scenario in wanted]
        # Per scale connection: the daemon's socket, 3 pipes and a process handle, the
        # client's socket; doubled for headroom.
        most = max([c.connections for c in cases if c.hold] or [0])
        nofile, nofile_note = raise_nofile(12 * most + 1024)
        servers = [("ours", args.ours)] + ([("theirs", theirs)] if theirs else [])
        for also in args.also:
            name, _, path = also.partition("=")
            if not name or not os.access(path, os.X_OK) or name in ("ours", "theirs"):
                p.error(f"--also {also}: want NAME=PATH to an executable")
            servers.append((name, path))
        theirs_label = f"theirs ({version_of(theirs)})" if theirs else ""

        started = time.monotonic()
        print(f"# {machine_text()}; RLIMIT_NOFILE {nofile}{nofile_note}; {runs} run(s) per "
              "scenario", file=sys.stderr)
        results, failures = run_cases(cases, servers, args.loadgen, runs, fixtures,
                                      server_flags)
        elapsed = time.monotonic() - started
    finally:
        fixtures.cleanup()

    command = "bench/run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    header = [
        f"Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"Machine: {machine_text()}; RLIMIT_NOFILE {nofile}{nofile_note}",
        f"Command: `{command.strip()}` ({runs} run(s) per scenario, {elapsed:.0f} s)",
        f"Ours: {shown(args.ours)} ({version_of(args.ours)}), tree at {git_revision()}"
        + (f", extra flags `{args.ours_flags}`" if args.ours_flags else ""),
    ]
    if theirs:
        header.append(f"Theirs: {shown(theirs)} ({version_of(theirs)})"
                      + (f", extra flags `{args.theirs_flags}`" if args.theirs_flags else ""))
    for name, path in servers[1 + bool(theirs):]:
        header.append(f"Also {name}: {shown(path)}")
    also = [name for name, _ in servers[1 + bool(theirs):]]
    sections = []
    ws_cases = [c for c in cases if c.scenario not in EXTRA_SCENARIOS]
    if ws_cases:
        sections.append(build_table(ws_cases, results, bool(theirs), theirs_label, also)
                        + "\n\n" + RATIO_NOTE)
    tls_cases = [c for c in cases if c.scenario == "tls"]
    if tls_cases:
        sections.append(
            "TLS (`tls`): each server over ws:// and over wss:// (--ssl, ECDSA P-256 "
            "certificate, full handshake on every connection).\n"
            f"Negotiated: {negotiated_text(results, tls_cases)}\n\n"
            + build_tls_table(tls_cases, results, bool(theirs)) + "\n\n"
            "wss÷ws is the median over the repetitions of the wss:// value divided by the "
            "ws:// value (below 1 for ↑ metrics and above 1 for ↓ ones is what TLS costs). "
            + ("The last ratio compares the two servers over wss://, within each "
               "repetition." if theirs else ""))
    compress_cases = [c for c in cases if c.scenario == "compress"]
    if compress_cases:
        sections.append(
            f"Compression (`compress`): a program prints lines of {LOG_FILE} (repeated); the "
            "client (loadgen log-stream) offers permessage-deflate on the --compress row "
            "and inflates what it receives. Wire bytes count everything after the 101.\n\n"
            + build_table(compress_cases, results, bool(theirs), theirs_label, also) + "\n\n"
            + compress_ratios(compress_cases, results) + " " + RATIO_NOTE)
    http_cases = [c for c in cases if c.scenario == "http"]
    if http_cases:
        load = http_cases[0].http_load
        sections.append(
            f"Plain HTTP (`http`): `taskset -c {CLIENT_CORE} wrk -t1 -cN -d{load.seconds}s "
            "--latency`; static files from --staticdir, a shell script from --cgidir.\n\n"
            + build_table(http_cases, results, bool(theirs), theirs_label) + "\n\n"
            + RATIO_NOTE + " Client CPU is wrk's.")
    text = "\n".join(header) + "\n\n" + "\n\n".join(sections) + "\n"
    if failures:
        text += "\nFailures:\n" + "\n".join(f"- {f}" for f in failures) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
        with open(args.out + ".json", "w") as f:
            json.dump({"header": header, "results": results}, f, indent=1)
    if args.smoke and failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
