#!/usr/bin/env python3
"""A small WebSocket client (RFC 6455, standard library only) for the install checks:
connects, sends the given messages, prints every message received (one per line) and,
at the end, `close CODE REASON`.

    ws-client.py ws://127.0.0.1:8080/ [--send TEXT]... [--expect N] [--timeout SECONDS]

Without --expect it reads until the server closes; with it, it closes (1000) after N
messages. Exit status: 0 after a close handshake, 1 on a timeout or a protocol error.
"""
import argparse
import base64
import os
import socket
import struct
import sys
import urllib.parse


def frame(opcode, payload):
    """A masked client frame."""
    mask = os.urandom(4)
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class Reader:
    def __init__(self, sock, buffered):
        self.sock = sock
        self.buf = buffered

    def exactly(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed without a close frame")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def message(self):
        """(opcode, payload) of the next whole message; control frames are returned as is."""
        data, first_opcode = b"", None
        while True:
            b0, b1 = self.exactly(2)
            fin, opcode, n = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self.exactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self.exactly(8))[0]
            payload = self.exactly(n)
            if opcode >= 8:
                return opcode, payload
            if first_opcode is None:
                first_opcode = opcode
            data += payload
            if fin:
                return first_opcode, data


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--send", action="append", default=[])
    parser.add_argument("--expect", type=int)
    parser.add_argument("--timeout", type=float, default=20)
    parser.add_argument("--origin")
    args = parser.parse_args()

    url = urllib.parse.urlsplit(args.url)
    port = url.port or 80
    sock = socket.create_connection((url.hostname, port), timeout=args.timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    target = (url.path or "/") + ("?" + url.query if url.query else "")
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {url.hostname}:{port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
    )
    if args.origin:
        request += f"Origin: {args.origin}\r\n"
    sock.sendall((request + "\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit("handshake: connection closed")
        head += chunk
    head, rest = head.split(b"\r\n\r\n", 1)
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    if " 101 " not in status + " ":
        sys.exit(f"handshake refused: {status}")
    for text in args.send:
        sock.sendall(frame(1, text.encode()))
    reader = Reader(sock, rest)
    received = 0
    try:
        while True:
            if args.expect is not None and received >= args.expect:
                sock.sendall(frame(8, struct.pack("!H", 1000)))
                args.expect = None
            opcode, payload = reader.message()
            if opcode == 1:
                print(payload.decode("utf-8", errors="replace"), flush=True)
                received += 1
            elif opcode == 2:
                print("binary:" + payload.hex(), flush=True)
                received += 1
            elif opcode == 9:
                sock.sendall(frame(10, payload))
            elif opcode == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                reason = payload[2:].decode("utf-8", errors="replace")
                print(f"close {code} {reason}".rstrip(), flush=True)
                try:
                    sock.sendall(frame(8, payload[:2]))
                except OSError:
                    pass
                return 0
    except (socket.timeout, EOFError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
