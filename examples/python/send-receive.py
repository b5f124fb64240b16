#!/usr/bin/env python3
# Sends "tick N" every second and, at the same time, answers every line it reads with
# "echo: LINE". Run: websocketd --port=8080 ./send-receive.py
import signal
import sys
import threading
import time

# Die quietly (no traceback) when websocketd ends the session and stops us.
signal.signal(signal.SIGINT, signal.SIG_DFL)
signal.signal(signal.SIGPIPE, signal.SIG_DFL)

out = sys.stdout.buffer
lock = threading.Lock()  # one line at a time from either thread


def send(line):
    with lock:
        out.write(line + b"\n")
        out.flush()


def tick():
    n = 1
    while True:
        time.sleep(1)
        send(b"tick %d" % n)
        n += 1


threading.Thread(target=tick, daemon=True).start()
for line in iter(sys.stdin.buffer.readline, b""):
    send(b"echo: " + line.rstrip(b"\n"))
