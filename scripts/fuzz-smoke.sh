#!/usr/bin/env bash
# Fuzz smoke run for CI: builds kvsync's four fuzz targets (tests/fuzz, cargo-fuzz + libFuzzer) and
# runs each for a few seconds from the corpus seeded from eventgrid/samples/. Fails if a target
# crashes, panics, leaks past the RSS limit or does not build. The long runs and their figures are in
# docs/RELIABILITY.md.
#
#   scripts/fuzz-smoke.sh                 # 10 s per target, ~50 s in all (FUZZ_SECONDS to change)
#   FUZZ_TARGETS="delivery auth" scripts/fuzz-smoke.sh
#
# Needs: the stable toolchain (cargo-fuzz's -Z flags are enabled with RUSTC_BOOTSTRAP=1; no nightly
# is downloaded), a C++ compiler for libFuzzer (g++ or clang++), and cargo-fuzz, installed here
# from crates.io if missing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SECONDS_EACH=${FUZZ_SECONDS:-10}
TARGETS=${FUZZ_TARGETS:-"delivery binary_headers functions auth"}
CARGO_FUZZ_VERSION=0.13.2

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "fuzz-smoke: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --quiet
fi
command -v c++ >/dev/null || { echo "fuzz-smoke: no C++ compiler (apt-get install g++)" >&2; exit 1; }

export RUSTC_BOOTSTRAP=1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvsync-fuzz-smoke.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
tests/fuzz/seed-corpus.sh "$WORK/corpus" >/dev/null

# Release build with AddressSanitizer (cargo-fuzz's default; -Zsanitizer needs RUSTC_BOOTSTRAP) —
# the same build as the long runs recorded in docs/RELIABILITY.md.
FUZZ_FLAGS=(--fuzz-dir tests/fuzz -O)
cargo fuzz build "${FUZZ_FLAGS[@]}"

status=0
for t in $TARGETS; do
  mkdir -p "$WORK/artifacts/$t"
  echo "fuzz-smoke: $t for ${SECONDS_EACH}s"
  if ! cargo fuzz run "${FUZZ_FLAGS[@]}" "$t" "$WORK/corpus/$t" -- \
      -max_total_time="$SECONDS_EACH" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 -artifact_prefix="$WORK/artifacts/$t/" >"$WORK/$t.log" 2>&1; then
    echo "fuzz-smoke: $t FAILED" >&2
    tail -n 60 "$WORK/$t.log" >&2
    for a in "$WORK/artifacts/$t"/*; do
      [[ -f $a ]] && { echo "--- $a (base64):" >&2; base64 -w0 "$a" >&2; echo >&2; }
    done
    status=1
  else
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$WORK/$t.log" || true
  fi
done
exit $status
