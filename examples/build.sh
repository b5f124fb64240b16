#!/usr/bin/env bash
# Builds the examples written in compiled languages into OUTDIR, one directory per language,
# each program named like the scripts of the other languages, without an extension:
#   OUTDIR/c/{count,greeter,dump-env,chat,send-receive,cgi/hello}      (cc)
#   OUTDIR/go/...                                                      (go build, offline)
#   OUTDIR/rust/...                                                    (rustc)
#   OUTDIR/java/...  small launchers running the classes that javac compiled into
#                    OUTDIR/java-classes (websocketd runs files, not class names)
# Each OUTDIR/LANGUAGE is also a ready --dir, and OUTDIR/LANGUAGE/cgi a --cgidir.
# Only each language's standard library is used; nothing is downloaded.
#
# Usage: examples/build.sh OUTDIR [c|java|go|rust ...]     (default: all four)
# Environment: CC (default cc), and Go's own variables (GOCACHE …; GOPROXY defaults to off).
set -euo pipefail

die() { echo "build.sh: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: $0 OUTDIR [c|java|go|rust ...]"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
shift
languages=("$@")
[ ${#languages[@]} -gt 0 ] || languages=(c java go rust)

programs=(count greeter dump-env chat send-receive)

# Needs the named commands on PATH.
need() {
  for tool in "$@"; do
    command -v "$tool" > /dev/null ||
      die "$tool not found: install the toolchain (on Debian: scripts/install-test-deps.sh)"
  done
}

build_c() {
  need "${CC:-cc}"
  mkdir -p "$out/c/cgi"
  for name in "${programs[@]}"; do
    "${CC:-cc}" -O2 -Wall -o "$out/c/$name" "$here/c/$name.c"
  done
  "${CC:-cc}" -O2 -Wall -o "$out/c/cgi/hello" "$here/c/cgi/hello.c"
}

build_go() {
  need go
  mkdir -p "$out/go/cgi"
  export GOPROXY=${GOPROXY:-off} GOTOOLCHAIN=${GOTOOLCHAIN:-local}
  # Each file is a program of its own (see the build line at the top of each).
  (cd "$here/go" &&
    for name in "${programs[@]}"; do go build -o "$out/go/$name" "$name.go"; done &&
    go build -o "$out/go/cgi/hello" cgi/hello.go)
}

build_rust() {
  need rustc
  mkdir -p "$out/rust/cgi"
  for name in "${programs[@]}"; do
    rustc --edition=2021 --crate-name "${name//-/_}" -o "$out/rust/$name" "$here/rust/$name.rs"
  done
  rustc --edition=2021 -o "$out/rust/cgi/hello" "$here/rust/cgi/hello.rs"
}

build_java() {
  need javac java
  local java classes=$out/java-classes
  java=$(command -v java)
  mkdir -p "$out/java/cgi" "$classes"
  javac -d "$classes" "$here"/java/*.java "$here"/java/cgi/*.java
  # launcher NAME CLASS: an executable that runs CLASS with the same JVM as this build.
  quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
  launcher() {
    printf '#!/bin/sh\nexec %s -cp %s %s "$@"\n' "$(quote "$java")" "$(quote "$classes")" "$2" > "$out/java/$1"
    chmod +x "$out/java/$1"
  }
  launcher count Count
  launcher greeter Greeter
  launcher dump-env DumpEnv
  launcher chat Chat
  launcher send-receive SendReceive
  launcher cgi/hello Hello
}

# The languages build side by side; each one's output is shown if it fails.
pids=()
for language in "${languages[@]}"; do
  case $language in
    c | java | go | rust) ;;
    *) die "unknown language '$language' (c, java, go or rust)" ;;
  esac
  ("build_$language") > "$out/.$language.log" 2>&1 &
  pids+=("$!")
done
failed=()
for i in "${!languages[@]}"; do
  if ! wait "${pids[$i]}"; then
    failed+=("${languages[$i]}")
    echo "build.sh: building the ${languages[$i]} examples failed:" >&2
    cat "$out/.${languages[$i]}.log" >&2
  fi
  rm -f "$out/.${languages[$i]}.log"
done
[ ${#failed[@]} -eq 0 ] || die "failed: ${failed[*]}"
echo "built ${languages[*]} examples in $out"
