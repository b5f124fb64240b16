#!/usr/bin/env python3
"""Memory per WebSocket connection, with and without permessage-deflate.

    bench/memory.py [--binary [NAME=]PATH ...] [--connections N]

For each mode and each binary it starts `websocketd --compress cat` on 127.0.0.1 (without
--compress, and the no-compression modes only, for a build that lacks the flag), opens N connections and
reads the daemon's RSS (VmRSS) before and after, then gives (after − before) ÷ N in KiB.
"idle" connections have exchanged nothing; "after a message" connections each echoed one
1 KiB text message (compressed both ways when deflate was negotiated) and then went quiet.
With context takeover the compressor and decompressor must be kept between messages; with
no_context_takeover they are released once the connection is idle. Python 3 standard
library only; see docs/benchmarks.md.
"""

import argparse
import os
import socket
import struct
import subprocess
import sys
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MESSAGE = (b"2026-12-01 10:00:00 status installed libfoo:amd64 1.2.3-4 " * 20)[:1024]

MODES = [
    ("no compression, idle", None, False),
    ("no compression, after a message", None, True),
    ("deflate, idle", "permessage-deflate", False),
    ("deflate, after a message (context takeover)", "permessage-deflate", True),
    ("deflate no_context_takeover, after a message",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover", True),
]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frame(first, payload):
    mask = b"\x01\x02\x03\x04"
    n = len(payload)
    head = bytes([first]) + (bytes([0x80 | n]) if n < 126 else b"\xfe" + struct.pack(">H", n))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise RuntimeError("connection closed")
        data += chunk
    return data


def connect(port, offer):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    extra = f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else ""
    sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += read_exact(sock, 1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(head.decode(errors="replace"))
    negotiated = b"permessage-deflate" in head.lower()
    if offer and not negotiated:
        raise RuntimeError("deflate not negotiated")
    return sock, negotiated


def echo_once(sock, deflate):
    if deflate:
        c = zlib.compressobj(1, zlib.DEFLATED, -15)
        payload = c.compress(MESSAGE) + c.flush(zlib.Z_SYNC_FLUSH)
        sock.sendall(frame(0xC1, payload[:-4]))
    else:
        sock.sendall(frame(0x81, MESSAGE))
    first, second = read_exact(sock, 2)
    n = second & 0x7F
    if n == 126:
        n = struct.unpack(">H", read_exact(sock, 2))[0]
    body = read_exact(sock, n)
    if deflate:
        assert first & 0x40, "reply not compressed"
        d = zlib.decompressobj(-15)
        body = d.decompress(body + b"\x00\x00\xff\xff")
    assert body == MESSAGE, "echo differs"


def has_compress(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, timeout=10)
    return b"--compress" in out.stdout + out.stderr


def measure(binary, n, offer, message):
    port = free_port()
    compress = ["--compress"] if has_compress(binary) else []
    proc = subprocess.Popen([binary, f"--port={port}", "--address=127.0.0.1", *compress,
                             "--loglevel=error", "cat"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        # Warm up: one connection and message, so lazily created state is not counted.
        warm, negotiated = connect(port, offer)
        echo_once(warm, negotiated)
        warm.close()
        time.sleep(0.5)
        before = rss_kib(proc.pid)
        socks = []
        for _ in range(n):
            sock, negotiated = connect(port, offer)
            if message:
                echo_once(sock, negotiated)
            socks.append(sock)
        time.sleep(1.0)
        after = rss_kib(proc.pid)
        for sock in socks:
            sock.close()
        return (after - before) / n
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", action="append", default=[], metavar="[NAME=]PATH",
                   help="a websocketd build (repeatable; default target/release/websocketd)")
    p.add_argument("--connections", type=int, default=200)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    binaries = [b.split("=", 1) if "=" in b else (b, b) for b in args.binary] or [
        ("ours", os.path.join(ROOT, "target", "release", "websocketd"))]
    print(f"KiB of daemon RSS per connection, median of {args.runs} runs of "
          f"{args.connections} connections\n")
    print("| connection state | " + " | ".join(name for name, _ in binaries) + " |")
    print("|---|" + "---|" * len(binaries))
    for label, offer, message in MODES:
        cells = []
        for _, binary in binaries:
            if offer and not has_compress(binary):
                cells.append("–")
                continue
            values = sorted(measure(binary, args.connections, offer, message)
                            for _ in range(args.runs))
            cells.append(f"{values[len(values) // 2]:.1f}")
        print(f"| {label} | " + " | ".join(cells) + " |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
