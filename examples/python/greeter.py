#!/usr/bin/env python3
# Answers every line it reads with "Hello, LINE!" until end of input. Run: websocketd --port=8080 ./greeter.py
import signal
import sys

# Die quietly (no traceback) when websocketd ends the session and stops us.
signal.signal(signal.SIGINT, signal.SIG_DFL)
signal.signal(signal.SIGPIPE, signal.SIG_DFL)

# Work on raw bytes so that any input, valid UTF-8 or not, goes through unchanged.
inp = sys.stdin.buffer
out = sys.stdout.buffer
for line in iter(inp.readline, b""):
    if line.endswith(b"\n"):
        line = line[:-1]
    out.write(b"Hello, " + line + b"!\n")
    out.flush()
