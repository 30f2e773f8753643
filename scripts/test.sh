#!/usr/bin/env bash
# The whole test suite, set-up included: system tools, the real Kubernetes API server for the
# integration tests (scripts/test-apiserver.sh), then every test target.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh --test kube_harness`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
scripts/test-apiserver.sh provide >/dev/null
cargo test --locked --all-targets "$@"
