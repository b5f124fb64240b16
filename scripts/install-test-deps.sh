#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine (run as root). Safe to run again:
# it only installs what is missing. Run: scripts/install-test-deps.sh
#
# Environment:
#   AUTOBAHN_DIR   directory holding the Autobahn setup.sh (default: REPO/../shared/autobahn)
#   AUTOBAHN_VENV  where to set up the Autobahn testsuite (default: /tmp/autobahn-venv)
#   PYTHON         Python used for that venv (default: first python3.x that has lib2to3)
set -euo pipefail

LOCK_WAIT_SECONDS=600   # longest we wait for another apt-get/dpkg to finish

log() { echo "install-test-deps: $*"; }
die() { echo "install-test-deps: ERROR: $*" >&2; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/.." && pwd))

[ "$(id -u)" -eq 0 ] || die "must run as root (it calls apt-get install)"
command -v apt-get > /dev/null || die "apt-get not found; this script is for Debian"

dpkg_installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2> /dev/null)" = "install ok installed" ]
}

# Is Debian package $1 (or what we need from it) already there?
present() {
  case $1 in
    # Only Debian's websocketd 0.4.1 will do: a websocketd of our own on PATH must not count.
    websocketd) dpkg_installed websocketd ;;
    chromium) command -v chromium > /dev/null || dpkg_installed chromium ;;
    chromium-driver) command -v chromedriver > /dev/null || dpkg_installed chromium-driver ;;
    procps) { command -v ps && command -v pgrep && command -v pkill; } > /dev/null || dpkg_installed procps ;;
    python3-venv) python3 -c 'import ensurepip, venv' > /dev/null 2>&1 || dpkg_installed python3-venv ;;
    *) command -v "$1" > /dev/null || dpkg_installed "$1" ;;
  esac
}

# apt-get with a bounded wait when another apt-get/dpkg holds the locks.
apt_get() {
  local deadline=$((SECONDS + LOCK_WAIT_SECONDS)) out rc said_waiting=
  out=$(mktemp)
  while :; do
    rc=0
    DEBIAN_FRONTEND=noninteractive apt-get -q -y \
      -o DPkg::Lock::Timeout=$((deadline > SECONDS ? deadline - SECONDS : 0)) \
      "$@" > "$out" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
      rm -f "$out"
      return 0
    fi
    if grep -qiE 'could not get lock|unable to (acquire|lock)|another process' "$out" &&
      [ "$SECONDS" -lt "$deadline" ]; then
      [ -n "$said_waiting" ] || log "apt/dpkg is busy (another apt-get running?), waiting up to ${LOCK_WAIT_SECONDS}s"
      said_waiting=1
      sleep 5
      continue
    fi
    if grep -q 'dpkg --configure -a' "$out" && [ -z "${configured:-}" ]; then
      configured=1
      log "finishing an interrupted dpkg run (dpkg --configure -a)"
      DEBIAN_FRONTEND=noninteractive dpkg --configure -a || true
      continue
    fi
    cat "$out" >&2
    rm -f "$out"
    return "$rc"
  done
}

# --- Debian packages ----------------------------------------------------------------------

packages=(chromium chromium-driver websocketd python3 python3-venv perl procps patch wrk openssl)
packages+=(groff man-db zsh fish)  # issue 14: man page and shell completion tests
packages+=(curl gcc)  # issue 14: commands of docs/guide.md
packages+=(gcc gawk)  # issue 12: --unbuffered tests compile a C program and run GNU awk
packages+=(systemd)  # issue 11: systemd-socket-activate and systemd-analyze (no PID 1 systemd needed)
packages+=(nginx haproxy)  # issue 11: the reverse-proxy recipes, tested end to end
packages+=(util-linux mount g++)  # issue 8: unshare/prlimit in reliability tests and soak; libFuzzer builds with g++
packages+=(curl)  # issue 13: curl --http2 and --http2-prior-knowledge tests
packages+=(nghttp2-client)  # issue 13: h2load for the HTTP/2 static-file benchmark
packages+=(redis-server)  # issue 10: --cluster tests with a real Redis
packages+=(ruby php-cli lua5.4 golang-go default-jdk-headless gcc)  # issue 14: examples in every language (tests/examples.rs)
packages+=(nats-server)  # issue 10: --cluster tests with a real NATS JetStream
missing=()
for pkg in "${packages[@]}"; do
  present "$pkg" || missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
  log "all packages present: ${packages[*]}"
else
  log "updating the package lists"
  apt_get update || die "apt-get update failed"
  for pkg in "${missing[@]}"; do
    log "installing $pkg"
  done
  apt_get install --no-install-recommends "${missing[@]}" ||
    die "apt-get install ${missing[*]} failed"
  for pkg in "${missing[@]}"; do
    present "$pkg" || die "$pkg still missing after apt-get install"
  done
  log "installed: ${missing[*]}"
fi

# --- Autobahn testsuite (WebSocket protocol conformance) -----------------------------------

autobahn_dir=${AUTOBAHN_DIR:-$repo/../shared/autobahn}
venv=${AUTOBAHN_VENV:-/tmp/autobahn-venv}

if [ ! -f "$autobahn_dir/setup.sh" ]; then
  log "no $autobahn_dir/setup.sh, skipping the Autobahn testsuite"
elif [ -x "$venv/bin/wstest" ] && [ -s "$venv/.autobahn-py3-setup" ]; then
  log "Autobahn testsuite already set up in $venv"
else
  if [ -z "${PYTHON:-}" ]; then
    # The setup ports the suite with lib2to3, which Python 3.13 dropped.
    for candidate in python3 python3.12 python3.11 python3.10 python3.9 python3.8; do
      if command -v "$candidate" > /dev/null &&
        "$candidate" -W ignore -c 'import lib2to3.main, ensurepip, venv' > /dev/null 2>&1; then
        PYTHON=$candidate
        break
      fi
    done
    [ -n "${PYTHON:-}" ] || die "the Autobahn setup needs Python 3.8-3.12 with lib2to3 and venv; none found"
  fi
  export PYTHON
  log "installing the Autobahn testsuite into $venv (with $PYTHON)"
  bash "$autobahn_dir/setup.sh" "$venv" || die "Autobahn setup ($autobahn_dir/setup.sh $venv) failed"
fi

log "done"
