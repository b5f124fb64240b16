#!/usr/bin/env python3
"""Cluster benchmarks (`--broadcast --cluster`): failover and latency through an engine.

    bench/cluster.py [--engine redis|nats] [--kills 20] [--runs 3] [--clients 1000]
                     [--rate 1000] [--seconds 10] [--out FILE]

(a) failover: three `--clusterrole=any` instances and one relay that is never killed, on a
freshly started engine (a free port of 127.0.0.1, nothing on disk). An observer client on
the relay reads the stream; the program prints `PID SEQ` at 200 lines/s and appends each
line it printed to a log. --kills times: find the instance running the program, SIGKILL
it, take the time until the observer receives the first line of the next program, start
the killed instance again. Reports the median and worst failover time, the lines the
programs printed that never reached the observer (lost: those in the pipe or in flight
when their instance died) and the lines it received more than once (duplicated).

(b) latency: three instances, --clients receivers on each (bench/loadgen `fanout`), one
program printing --rate lines/s stamped with the wall-clock time of the write; the load
generator reports p50/p99 from the program's write to the client's receive. The same
load against one instance without --cluster (3 x --clients receivers on it) gives the
ratio: what going through the engine costs. Medians of --runs repetitions.

Servers and the engine run pinned to core 0, clients to core 1, with
nothing else benchmarking at the same time. Python 3 standard library only. See docs/cluster.md.
"""

import argparse
import base64
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as common  # noqa: E402  (the shared helpers of bench/run.py)

# Prints `PID SEQ` at 200 lines/s; every line it printed is appended to LOG.
FAILOVER_PROGRAM = r"""
import os, sys, time
log = open(sys.argv[1], "a")
pid, seq, due = os.getpid(), 0, time.monotonic()
while True:
    seq += 1
    line = "%d %d\n" % (pid, seq)
    sys.stdout.write(line)
    sys.stdout.flush()
    log.write(line)
    log.flush()
    due += 0.005
    pause = due - time.monotonic()
    if pause > 0:
        time.sleep(pause)
"""

# Prints RATE lines/s of 100 bytes: a 12-digit sequence number, the 20-digit wall-clock
# time of the write in nanoseconds, padding (what loadgen's fanout scenario reads).
RATE_PROGRAM = r"""
import os, sys, time
rate = int(sys.argv[1])
pad = b"x" * 65
seq, due = 0, time.monotonic()
while True:
    os.write(1, b"%012d %020d %s\n" % (seq, time.time_ns(), pad))
    seq += 1
    due += 1.0 / rate
    pause = due - time.monotonic()
    if pause > 0:
        time.sleep(pause)
"""


class Engine:
    """The engine's server on a free port of 127.0.0.1, nothing kept on disk."""

    def __init__(self, kind, workdir):
        self.kind = kind
        self.port = common.free_port()
        if kind == "redis":
            argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir", workdir]
        else:
            store = tempfile.mkdtemp(dir=workdir)
            argv = ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js",
                    "-sd", store]
        self.proc = subprocess.Popen(["taskset", "-c", common.SERVER_CORE, *argv],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        common.wait_port(self.port)

    def url(self, name):
        return f"{self.kind}://127.0.0.1:{self.port}/{name}"

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class Instance:
    """One websocketd of the cluster."""

    def __init__(self, ours, flags, program):
        self.port = common.free_port()
        self.argv = [ours, f"--port={self.port}", "--address=127.0.0.1", "--loglevel=error",
                     *flags, *program]
        self.start()

    def start(self):
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(["taskset", "-c", common.SERVER_CORE, *self.argv],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, start_new_session=True)
        common.wait_port(self.port)

    def programs(self):
        """PIDs of the programs this instance runs (children, or its spawner's)."""
        out = []
        for child in children(self.proc.pid):
            if cmdline(child).startswith(b"websocketd-spawner"):
                out.extend(children(child))
            else:
                out.append(child)
        return out

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def stop(self):
        common.end_session(self.proc, 10)


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


class Observer(threading.Thread):
    """A WebSocket client that records (receive time, text) of every message."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError(head.decode(errors="replace"))
        self.sock.settimeout(None)
        self.received = []
        self.closed = None
        self.lock = threading.Lock()
        self.start()

    def read_exact(self, n, buf):
        while len(buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def run(self):
        buf = b""
        try:
            while True:
                buf = self.read_exact(2, buf)
                opcode, length = buf[0] & 0x0F, buf[1] & 0x7F
                at = 2
                if length == 126:
                    buf = self.read_exact(4, buf)
                    length, at = int.from_bytes(buf[2:4], "big"), 4
                elif length == 127:
                    buf = self.read_exact(10, buf)
                    length, at = int.from_bytes(buf[2:10], "big"), 10
                buf = self.read_exact(at + length, buf)
                payload, buf = buf[at:at + length], buf[at + length:]
                if opcode == 8:
                    self.closed = payload
                    return
                if opcode == 1:
                    with self.lock:
                        self.received.append((time.monotonic(), payload.decode()))
        except (OSError, EOFError) as err:
            self.closed = str(err)

    def lines(self):
        with self.lock:
            return list(self.received)


def runner_of(instances, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [(i, inst.programs()) for i, inst in enumerate(instances)]
        busy = [(i, p) for i, p in running if p]
        if len(busy) == 1 and len(busy[0][1]) == 1:
            return busy[0][0], busy[0][1][0]
        time.sleep(0.01)
    raise RuntimeError(f"no single runner: {running}")


def failover(args, workdir):
    engine = Engine(args.engine, workdir)
    log = os.path.join(workdir, "printed.log")
    program = ["python3", "-c", FAILOVER_PROGRAM, log]
    url = engine.url("failover")
    flags = ["--broadcast", f"--cluster={url}", f"--leasems={args.lease}"]
    instances = [Instance(args.ours, flags, program) for _ in range(3)]
    relay = Instance(args.ours, [*flags, "--clusterrole=relay"], program)
    times = []
    try:
        observer = Observer(relay.port)
        runner, pid = runner_of(instances)
        for kill in range(args.kills):
            deadline = time.monotonic() + 30
            while not any(t.startswith(f"{pid} ") for _, t in observer.lines()):
                if time.monotonic() > deadline:
                    raise RuntimeError("observer receives nothing")
                time.sleep(0.01)
            killed_at = time.monotonic()
            instances[runner].kill()
            first_new = None
            while first_new is None:
                for at, text in observer.lines():
                    if at >= killed_at and not text.startswith(f"{pid} "):
                        first_new = at
                        break
                if time.monotonic() > killed_at + 30:
                    raise RuntimeError("no failover within 30 s")
                time.sleep(0.005)
            times.append(first_new - killed_at)
            print(f"kill {kill + 1}: {times[-1] * 1000:.0f} ms", file=sys.stderr)
            instances[runner].start()
            runner, pid = runner_of(instances)
        time.sleep(1)
        received = [t for _, t in observer.lines()]
        with open(log) as f:
            printed = set(line.strip() for line in f if line.strip())
        seen = set()
        duplicated = 0
        for text in received:
            if text in seen:
                duplicated += 1
            seen.add(text)
        lost = len(printed - seen)
        return {
            "kills": len(times),
            "failover_median_ms": statistics.median(times) * 1000,
            "failover_worst_ms": max(times) * 1000,
            "failover_all_ms": [round(t * 1000) for t in times],
            "lines_printed": len(printed),
            "lines_received": len(received),
            "lines_lost": lost,
            "lines_duplicated": duplicated,
            "observer_closed": observer.closed,
        }
    finally:
        for inst in [*instances, relay]:
            inst.stop()
        engine.stop()


def loadgen(args, port, seconds):
    argv = ["taskset", "-c", common.CLIENT_CORE, args.loadgen, "fanout",
            "--url", f"ws://127.0.0.1:{port}/", "--connections", str(args.clients),
            "--parallel", "200", "--sources", "1", "--seconds", str(seconds),
            "--warmup", "2", "--max-seconds", "120"]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def latency_run(args, workdir, clustered):
    program = ["python3", "-c", RATE_PROGRAM, str(args.rate)]
    engine = Engine(args.engine, workdir) if clustered else None
    if clustered:
        flags = ["--broadcast", f"--cluster={engine.url('latency')}"]
        instances = [Instance(args.ours, flags, program) for _ in range(3)]
        ports = [inst.port for inst in instances]
    else:
        instances = [Instance(args.ours, ["--broadcast", "--prestart"], program)]
        ports = [instances[0].port] * 3
    try:
        gens = [loadgen(args, port, args.seconds) for port in ports]
        reports = []
        for gen in gens:
            out, err = gen.communicate(timeout=180)
            report = common.parse_report(out) or {"error": err.decode(errors="replace")[-300:]}
            reports.append(report)
        failed = [r["error"] for r in reports if "error" in r]
        if failed:
            raise RuntimeError("; ".join(failed))
        return {
            "p50_ms": statistics.median(r["p50_ms"] for r in reports),
            "p99_ms": max(r["p99_ms"] for r in reports),
            "lost_pct": max(r["lost_pct"] for r in reports),
            "msgs_per_s": sum(r["msgs_per_s"] for r in reports),
        }
    finally:
        for inst in instances:
            inst.stop()
        if engine:
            engine.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["redis", "nats"], default="redis")
    parser.add_argument("--ours", default=os.path.join(common.ROOT, "target/release/websocketd"))
    parser.add_argument("--loadgen", default=os.path.join(common.ROOT, "target/release/loadgen"))
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--lease", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--skip", choices=["failover", "latency"], default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    for path in (args.ours, args.loadgen):
        if not os.access(path, os.X_OK):
            sys.exit(f"not executable: {path} (cargo build --release -p websocketd -p loadgen)")
    common.raise_nofile(3 * args.clients + 1000)
    result = {"engine": args.engine, "machine": common.machine_text()}
    with tempfile.TemporaryDirectory() as workdir:
        if args.skip != "failover":
            result["failover"] = failover(args, workdir)
        if args.skip != "latency":
            runs = []
            for i in range(args.runs):
                # Alternate the order so neither variant always runs on a warmer machine.
                pair = [True, False] if i % 2 == 0 else [False, True]
                row = {}
                for clustered in pair:
                    row["cluster" if clustered else "single"] = latency_run(args, workdir, clustered)
                runs.append(row)
                print(f"latency run {i + 1}: {json.dumps(row)}", file=sys.stderr)
            result["latency_runs"] = runs
            for variant in ("cluster", "single"):
                result[f"{variant}_p50_ms"] = statistics.median(r[variant]["p50_ms"] for r in runs)
                result[f"{variant}_p99_ms"] = statistics.median(r[variant]["p99_ms"] for r in runs)
                result[f"{variant}_lost_pct"] = max(r[variant]["lost_pct"] for r in runs)
            result["p50_ratio"] = statistics.median(
                r["cluster"]["p50_ms"] / r["single"]["p50_ms"] for r in runs)
            result["p99_ratio"] = statistics.median(
                r["cluster"]["p99_ms"] / r["single"]["p99_ms"] for r in runs)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
