#!/usr/bin/env python3
# Counts from 1 to 10, one number every half second. Run: websocketd --port=8080 ./count.py
import signal
import time

# Die quietly (no traceback) when websocketd ends the session and stops us.
signal.signal(signal.SIGINT, signal.SIG_DFL)
signal.signal(signal.SIGPIPE, signal.SIG_DFL)

for i in range(1, 11):
    if i > 1:
        time.sleep(0.5)
    print(i, flush=True)
