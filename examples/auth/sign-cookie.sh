#!/bin/sh
# Makes a `session` cookie value that signed-cookie.sh accepts: what your application would
# set after a login.
#
#   openssl genpkey -algorithm ed25519 -out session-private.pem
#   openssl pkey -in session-private.pem -pubout -out session-public.pem
#   examples/auth/sign-cookie.sh session-private.pem alice 3600
#
# prints the cookie value for user alice, valid for an hour.
set -eu

[ $# -eq 3 ] || { echo "usage: $0 PRIVATE_KEY USER SECONDS" >&2; exit 2; }
key=$1 user=$2 seconds=$3
case "$user" in "" | *[!A-Za-z0-9_.-]*) echo "$0: user names are [A-Za-z0-9_.-]+" >&2; exit 2 ;; esac

encode() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%s:%s' "$user" $(($(date +%s) + seconds)) > "$work/payload"
openssl pkeyutl -sign -inkey "$key" -rawin -in "$work/payload" -out "$work/signature"
printf '%s.%s\n' "$(encode < "$work/payload")" "$(encode < "$work/signature")"
