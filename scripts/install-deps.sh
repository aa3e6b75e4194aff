#!/usr/bin/env bash
# Installs what Sluice needs and a fresh Debian machine lacks: hiredis (the RESP reader the Swift
# client wraps), OpenSSL (TLS; the tests make their certificates with its command-line tool),
# Redis 7 (server, redis-cli, redis-benchmark), tmux (the terminal the `sluice top` test runs
# in) and python3 (the benchmark scripts read the commands' --json output with it). Needs root
# or sudo for apt-get; does nothing when everything is present. The Swift toolchain itself is
# expected on PATH.
set -euo pipefail

missing=()
[ -f /usr/include/hiredis/hiredis.h ] || missing+=(libhiredis-dev)
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 && command -v redis-benchmark >/dev/null 2>&1 || missing+=(redis-tools)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v python3 >/dev/null 2>&1 || missing+=(python3)

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
  echo "error: the Swift toolchain (6.0 or later) is not on PATH" >&2
  exit 1
fi
