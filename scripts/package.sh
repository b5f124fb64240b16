#!/usr/bin/env bash
# The install paths, built and checked the way a user gets them:
#   1. `cargo install --path .` into a scratch root: the binary runs and says its version.
#   2. The Debian package (cargo-deb): man page and completions made by
#      `websocketd --generate=...`, examples, systemd units when dist/systemd has them.
#      Checked in a throw-away root (dpkg-deb -x): control fields, file list, the installed
#      binary serving the installed count example to a WebSocket client.
#   3. With CI=true (or WSD_REAL_DPKG=1): a real `dpkg -i`, the same checks on the system's
#      /usr/bin/websocketd, then Debian's websocketd 0.4.1 is put back as it was.
# Prints how long each step took. Run as root from anywhere: scripts/package.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

CARGO_DEB_VERSION=3.8.0   # the cargo-deb this script was written against
SERVE_SECONDS=20          # longest wait for a daemon to listen / a client to finish

log() { echo "package: $*"; }
die() { echo "package: ERROR: $*" >&2; exit 1; }
step_start=$SECONDS
timed() { log "$1 took $((SECONDS - step_start)) s"; step_start=$SECONDS; }

scratch=$(mktemp -d /tmp/wsd-package.XXXXXX)
daemon_pid=
restore_debian=
cleanup() {
  [ -z "$daemon_pid" ] || kill "$daemon_pid" 2> /dev/null || true
  if [ -n "$restore_debian" ]; then
    log "putting Debian's websocketd back"
    dpkg -r websocketd-rs > /dev/null 2>&1 || true
    dpkg -i "$restore_debian" > /dev/null || echo "package: ERROR: could not reinstall $restore_debian" >&2
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT

# Serves the count example with the given websocketd and checks what a client receives.
check_count() {
  local binary=$1 examples=$2 port out
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  out=$scratch/daemon.log
  : > "$out"
  "$binary" --port="$port" --address=127.0.0.1 "$examples/bash/count.sh" > "$out" 2>&1 &
  daemon_pid=$!
  local deadline=$((SECONDS + SERVE_SECONDS))
  until grep -q "Starting WebSocket server" "$out"; do
    [ "$SECONDS" -lt "$deadline" ] || die "$binary did not start: $(cat "$out")"
    kill -0 "$daemon_pid" 2> /dev/null || die "$binary exited: $(cat "$out")"
    sleep 0.1
  done
  local got want
  got=$(timeout "$SERVE_SECONDS" python3 scripts/ws-client.py "ws://127.0.0.1:$port/") ||
    die "the client failed against $binary: $got"
  want=$(printf '%s\n' 1 2 3 4 5 6 7 8 9 10 "close 1000")
  [ "$got" = "$want" ] || die "count example from $examples: expected 1..10 and close 1000, got: $got"
  kill "$daemon_pid"
  wait "$daemon_pid" 2> /dev/null || true
  daemon_pid=
  log "count example served by $binary from $examples: 1..10, close 1000"
}

# --- 1. cargo install --------------------------------------------------------------------
# Built in ./target so that the release binary it leaves there is the one cargo-deb packs:
# one release build for both paths (and none when bench-smoke.sh already built it).
cargo install --locked --path . --root "$scratch/cargo-root" --target-dir target --quiet
"$scratch/cargo-root/bin/websocketd" --version | grep -q '^websocketd [0-9.]* (rustc ' ||
  die "cargo install: the installed binary does not print its version"
log "cargo install --path . works: $("$scratch/cargo-root/bin/websocketd" --version)"
timed "cargo install --path ."

# --- 2. the Debian package ---------------------------------------------------------------
if ! cargo deb --version 2> /dev/null | grep -q "$CARGO_DEB_VERSION"; then
  log "installing cargo-deb $CARGO_DEB_VERSION (compiled once per machine)"
  cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
  timed "cargo install cargo-deb"
fi

assets=target/deb-assets
rm -rf "$assets"
mkdir -p "$assets"/{bash,zsh,fish,examples,programs,systemd}
release=target/release/websocketd
"$release" --generate=man | gzip -9n > "$assets/websocketd.1.gz"
"$release" --generate=bash > "$assets/bash/websocketd"
"$release" --generate=zsh > "$assets/zsh/_websocketd"
"$release" --generate=fish > "$assets/fish/websocketd.fish"
# Examples keep their layout; executable ones (programs, CGI scripts) stay executable.
# Only the files the repository tracks: no build output (examples/build.sh) gets in.
example_files() {
  if git -C examples rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    (cd examples && git ls-files -z .)
  else
    (cd examples && find . -type f -print0)
  fi
}
while IFS= read -r -d '' file; do
  if [ -x "examples/$file" ]; then kind=programs; else kind=examples; fi
  (cd examples && cp --parents -t "$repo/$assets/$kind" -- "$file")
done < <(example_files)
# systemd units, when the repository has them (dist/systemd): the package variant with units.
variant=()
if compgen -G "dist/systemd/*" > /dev/null; then
  # The units are written for a binary in /usr/local/bin; the package's is in /usr/bin.
  # They are not enabled: the program to serve is chosen with `systemctl edit websocketd`.
  for unit in dist/systemd/*; do
    sed 's|/usr/local/bin/websocketd|/usr/bin/websocketd|g' "$unit" > "$assets/systemd/$(basename "$unit")"
  done
  variant=(--variant=systemd)
fi
rm -f target/debian/websocketd-rs_*.deb
cargo deb --no-build --locked --quiet "${variant[@]}" > /dev/null
deb=$(ls target/debian/websocketd-rs_*.deb)
timed "cargo deb"
log "$(basename "$deb"): $(stat -c %s "$deb") bytes; the binary in it: $(stat -c %s "$release") bytes"

field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = websocketd-rs ] || die "Package: $(field Package)"
for name in Conflicts Replaces Provides; do
  [ "$(field "$name")" = websocketd ] || die "$name: '$(field "$name")', expected websocketd"
done
field Depends | grep -q 'libc6' || die "Depends lacks libc6 (from ldd): $(field Depends)"
listing=$(dpkg-deb -c "$deb")
contents=$(awk '{print $6}' <<< "$listing")
for path in ./usr/bin/websocketd ./usr/share/man/man1/websocketd.1.gz \
  ./usr/share/bash-completion/completions/websocketd ./usr/share/zsh/vendor-completions/_websocketd \
  ./usr/share/fish/vendor_completions.d/websocketd.fish ./usr/share/doc/websocketd/README.md \
  ./usr/share/doc/websocketd/examples/README.md ./usr/share/doc/websocketd/examples/count.html \
  ./usr/share/doc/websocketd/examples/build.sh ./usr/share/doc/websocketd/examples/c/count.c \
  ./usr/share/doc/websocketd/examples/{java/Count.java,go/count.go,rust/count.rs,python/count.py} \
  ./usr/share/doc/websocketd/examples/{perl/count.pl,ruby/count.rb,php/count.php,nodejs/count.js,lua/count.lua}; do
  grep -qx -- "$path" <<< "$contents" || die "the package lacks $path"
done
for unit in "$assets"/systemd/*; do
  [ -e "$unit" ] || continue
  grep -qx -- "./usr/lib/systemd/system/$(basename "$unit")" <<< "$contents" ||
    die "the package lacks the unit $(basename "$unit")"
done
grep -q '^-rwxr-xr-x .* ./usr/share/doc/websocketd/examples/bash/count.sh$' <<< "$listing" ||
  die "bash/count.sh is not executable in the package"
! grep -q -- '-classes/\|\.class$' <<< "$listing" || die "the package holds built examples"

root=$scratch/root
dpkg-deb -x "$deb" "$root"
"$root/usr/bin/websocketd" --version | grep -q '^websocketd ' || die "extracted binary: no version"
for unit in "$root"/usr/lib/systemd/system/*.service; do
  [ -e "$unit" ] || continue
  ! grep -q '/usr/local/bin/websocketd' "$unit" || die "$(basename "$unit") still runs /usr/local/bin/websocketd"
  grep -q '^ExecStart=/usr/bin/websocketd ' "$unit" || die "$(basename "$unit") does not run /usr/bin/websocketd"
done
man_out=$(MANWIDTH=80 man -P cat -l "$root/usr/share/man/man1/websocketd.1.gz" 2>&1)
grep -q '^SYNOPSIS' <<< "$man_out" || die "man -l on the packaged page: $man_out"
check_count "$root/usr/bin/websocketd" "$root/usr/share/doc/websocketd/examples"
timed "checks in a throw-away root"

# --- 3. a real dpkg -i ---------------------------------------------------------------------
if [ "${CI:-}" != true ] && [ "${WSD_REAL_DPKG:-}" != 1 ]; then
  log "skipping the real dpkg -i (set CI=true or WSD_REAL_DPKG=1)"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || die "the real dpkg -i needs root"
if [ "$(dpkg-query -W -f='${Status}' websocketd 2> /dev/null)" = "install ok installed" ]; then
  version=$(dpkg-query -W -f='${Version}' websocketd)
  (cd "$scratch" && apt-get download -q "websocketd=$version" > /dev/null) ||
    die "cannot download websocketd $version to put it back afterwards"
  restore_debian=$(ls "$scratch"/websocketd_*.deb)
fi
dpkg -i "$deb" > /dev/null
[ "$(dpkg-query -W -f='${Status}' websocketd 2> /dev/null)" != "install ok installed" ] ||
  die "Debian's websocketd is still installed next to ours"
installed=$(command -v websocketd)
[ "$installed" = /usr/bin/websocketd ] || die "websocketd on PATH is $installed"
websocketd --version | grep -q "(rustc " || die "/usr/bin/websocketd is not ours"
[ "$(man -w websocketd)" = /usr/share/man/man1/websocketd.1.gz ] || die "man websocketd: $(man -w websocketd)"
check_count /usr/bin/websocketd /usr/share/doc/websocketd/examples
dpkg -r websocketd-rs > /dev/null
[ ! -e /usr/bin/websocketd ] || die "dpkg -r left /usr/bin/websocketd behind"
if [ -n "$restore_debian" ]; then
  dpkg -i "$restore_debian" > /dev/null
  restore_debian=
  /usr/bin/websocketd --version | grep -q "(rustc " && die "Debian's websocketd was not put back"
  log "Debian's websocketd $version is back"
fi
timed "real dpkg -i, checks and removal"
