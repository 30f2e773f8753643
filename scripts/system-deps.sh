#!/usr/bin/env bash
# Installs the Debian packages kvsync's build and tests need when they are missing (idempotent).
set -euo pipefail
need=()
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
command -v xz >/dev/null || need+=(xz-utils)
command -v python3 >/dev/null || need+=(python3)
command -v cc >/dev/null || need+=(gcc)
command -v c++ >/dev/null || need+=(g++)  # libFuzzer (scripts/fuzz-smoke.sh)
command -v flock >/dev/null || need+=(util-linux)
command -v unzip >/dev/null || need+=(unzip)
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || need+=(ca-certificates)
if ((${#need[@]})); then
  echo "system-deps: installing ${need[*]}" >&2
  sudo_=(); [[ $(id -u) == 0 ]] || sudo_=(sudo)
  "${sudo_[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi
