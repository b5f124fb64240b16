#!/bin/sh
# Answers every line it reads with "Hello, LINE!" until end of input. Run: websocketd --port=8080 ./greeter.sh
while IFS= read -r line || [ -n "$line" ]; do
  printf 'Hello, %s!\n' "$line"
done
exit 0
