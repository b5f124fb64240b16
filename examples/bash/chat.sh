#!/bin/sh
# A chat room: every line a client sends goes to every client, stamped with the time (UTC).
# One copy serves the whole room:
#   websocketd --port=8080 --broadcast --broadcastinput=lines ./chat.sh
while IFS= read -r line || [ -n "$line" ]; do
  [ -n "$line" ] || continue
  printf '%s %s\n' "$(date -u +%H:%M:%S)" "$line"
done
exit 0
