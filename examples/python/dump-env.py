#!/usr/bin/python3
# Prints its environment as NAME=value lines sorted by name. Run: websocketd --port=8080 ./dump-env.py
# The interpreter is named by full path on purpose: a python3 found through PATH may be a
# version-manager shim (pyenv and the like) that adds variables of its own.
import os
import sys

# Under a C locale Python adds LC_CTYPE=C.UTF-8 to os.environ by itself (PEP 538),
# so prefer the environment exactly as the process received it, where Linux shows it.
try:
    with open("/proc/self/environ", "rb") as f:
        env = dict(entry.split(b"=", 1) for entry in f.read().split(b"\0") if b"=" in entry)
except OSError:
    env = dict(os.environb)

out = sys.stdout.buffer
for name in sorted(env):
    out.write(name + b"=" + env[name] + b"\n")
    out.flush()
