#!/bin/sh
# Prints its environment as NAME=value lines sorted by name. Run: websocketd --port=8080 ./dump-env.sh
env | LC_ALL=C sort -t= -k1,1
exit 0
