#!/bin/sh
# Counts from 1 to 10, one number every half second. Run: websocketd --port=8080 ./count.sh
for i in 1 2 3 4 5 6 7 8 9 10; do
  [ "$i" -gt 1 ] && sleep 0.5
  echo "$i"
done
exit 0
