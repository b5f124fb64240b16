#!/usr/bin/env python3
# A chat room: every line a client sends goes to every client, stamped with the time (UTC).
# One copy serves the whole room:
#   websocketd --port=8080 --broadcast --broadcastinput=lines ./chat.py
import signal
import sys
import time

# Die quietly (no traceback) when websocketd ends the session and stops us.
signal.signal(signal.SIGINT, signal.SIG_DFL)
signal.signal(signal.SIGPIPE, signal.SIG_DFL)

inp = sys.stdin.buffer
out = sys.stdout.buffer
for line in iter(inp.readline, b""):
    line = line.rstrip(b"\n")
    if not line:
        continue
    stamp = time.strftime("%H:%M:%S", time.gmtime()).encode()
    out.write(stamp + b" " + line + b"\n")
    out.flush()
