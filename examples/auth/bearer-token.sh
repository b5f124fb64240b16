#!/bin/sh
# An --authcmd program: accepts a connection that sends `Authorization: Bearer TOKEN` for a
# TOKEN listed in the tokens file, and passes the user name on to the session's program as
# AUTH_USER. Anything else is refused with 401 and a WWW-Authenticate challenge.
#
#   websocketd --authcmd=examples/auth/bearer-token.sh --passenv=PATH,TOKENS_FILE ./chat.sh
#
# The tokens file ($TOKENS_FILE, default: `tokens` beside this script) holds one
# `TOKEN USER` pair per line; lines starting with # are comments. Browsers cannot set
# headers on a WebSocket: this suits command-line and server clients (see signed-cookie.sh
# for browsers).
set -u

tokens=${TOKENS_FILE:-$(dirname "$0")/tokens}

refuse() {
  printf 'Status: 401 Unauthorized\n'
  printf 'WWW-Authenticate: Bearer realm="websocketd"%s\n' "$2"
  printf 'Content-Type: text/plain; charset=utf-8\n\n%s\n' "$1"
  exit 1
}

case "${HTTP_AUTHORIZATION-}" in
  "Bearer "*) token=${HTTP_AUTHORIZATION#Bearer } ;;
  *) refuse "a bearer token is required" "" ;;
esac
# RFC 6750 token characters only: nothing that awk or the shell could interpret.
case "$token" in
  "" | *[!A-Za-z0-9._~+/=-]*) refuse "malformed token" ', error="invalid_token"' ;;
esac
user=$(awk -v token="$token" '$1 == token { print $2; found = 1; exit } END { exit !found }' "$tokens") ||
  refuse "unknown token" ', error="invalid_token"'
echo "USER=$user"
