#!/bin/sh
# An --authcmd program: accepts a connection whose `session` cookie was signed by your
# application, checked with openssl against its public key; the user name goes on to the
# session's program as AUTH_USER. Browsers send cookies with WebSocket upgrades, so this
# works for web pages.
#
#   websocketd --authcmd=examples/auth/signed-cookie.sh --passenv=PATH,SESSION_PUBLIC_KEY ./app.sh
#
# The cookie is BASE64URL(USER:EXPIRY) "." BASE64URL(Ed25519 signature of USER:EXPIRY),
# EXPIRY in seconds since 1970; sign-cookie.sh makes one. The public key is
# $SESSION_PUBLIC_KEY (default: session-public.pem beside this script); only the
# application holds the private key, so nothing secret is needed here.
set -u

public_key=${SESSION_PUBLIC_KEY:-$(dirname "$0")/session-public.pem}

refuse() {
  printf 'Status: 403 Forbidden\nContent-Type: text/plain; charset=utf-8\n\n%s\n' "$1"
  exit 1
}

# base64url without padding → bytes.
decode() {
  padded=$(printf '%s' "$1" | tr '_-' '/+')
  while [ $((${#padded} % 4)) -ne 0 ]; do padded="$padded="; done
  printf '%s\n' "$padded" | openssl base64 -d -A
}

cookie=$(printf '%s\n' "${HTTP_COOKIE-}" | tr ';' '\n' | sed -n 's/^ *session=//p' | head -n 1)
[ -n "$cookie" ] || refuse "no session cookie"
payload64=${cookie%%.*}
signature64=${cookie#*.}
case "$cookie" in
  *.*.* | .* | *. | *[!A-Za-z0-9_.-]*) refuse "malformed session cookie" ;;
  *.*) ;;
  *) refuse "malformed session cookie" ;;
esac

work=$(mktemp -d) || refuse "cannot check the cookie"
trap 'rm -rf "$work"' EXIT
decode "$payload64" > "$work/payload" && decode "$signature64" > "$work/signature" ||
  refuse "malformed session cookie"
openssl pkeyutl -verify -pubin -inkey "$public_key" -rawin \
  -in "$work/payload" -sigfile "$work/signature" > /dev/null 2>&1 ||
  refuse "invalid session cookie"

payload=$(cat "$work/payload")
user=${payload%%:*}
expiry=${payload#*:}
case "$user" in "" | *[!A-Za-z0-9_.-]*) refuse "invalid session cookie" ;; esac
case "$expiry" in "" | *[!0-9]*) refuse "invalid session cookie" ;; esac
[ "$expiry" -gt "$(date +%s)" ] || refuse "session expired"
echo "USER=$user"
