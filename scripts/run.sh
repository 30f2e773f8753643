#!/usr/bin/env bash
# Builds and runs kvsync. With no arguments it runs the no-cluster demo (`kvsync demo`): the real
# server on 127.0.0.1:8080 over bundled ESO manifests, replaying bundled Event Grid deliveries.
# Any arguments are passed to kvsync instead (e.g. `scripts/run.sh serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
if (($# == 0)); then set -- demo; fi
exec cargo run --locked --quiet -- "$@"
