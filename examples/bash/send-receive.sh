#!/bin/sh
# Sends "tick N" every second and, at the same time, answers every line it reads with
# "echo: LINE". Run: websocketd --port=8080 ./send-receive.sh
# The ticker is a background subshell; each printf is one write of one line, so its lines
# and the echoes never mix.
(
  i=1
  while sleep 1; do
    printf 'tick %d\n' "$i"
    i=$((i + 1))
  done
) &
ticker=$!
while IFS= read -r line || [ -n "$line" ]; do
  printf 'echo: %s\n' "$line"
done
kill "$ticker" 2> /dev/null
exit 0
