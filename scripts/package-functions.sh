#!/usr/bin/env bash
# Builds the Azure Functions custom-handler package: a zip in the layout the Functions host expects
#   host.json                      (customHandler → ./kvsync functions)
#   KeyVaultEvents/function.json   (eventGridTrigger, binding "eventGridEvent")
#   kvsync                         (Linux x86-64 executable)
# Usage: scripts/package-functions.sh [OUT.zip]     (default target/kvsync-functions.zip)
# KVSYNC_BIN=path uses an already built binary instead of `cargo build --release`.
# Deploy: az functionapp deployment source config-zip -g RG -n APP --src OUT.zip
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/kvsync-functions.zip}
bin=${KVSYNC_BIN:-}
if [[ -z $bin ]]; then
  # A static musl binary runs on any Functions Linux image; fall back to the host target (glibc)
  # when the musl target is not installed (the Functions Linux images are Debian-based).
  if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
    cargo build --release --locked --target x86_64-unknown-linux-musl
    bin=target/x86_64-unknown-linux-musl/release/kvsync
  else
    cargo build --release --locked
    bin=target/release/kvsync
  fi
fi
[[ -x $bin ]] || { echo "package-functions: no executable at $bin" >&2; exit 1; }
stage=$(mktemp -d "${TMPDIR:-/tmp}/kvsync-functions.XXXXXX")
trap 'rm -rf "$stage"' EXIT
cp functions/host.json "$stage/"
mkdir -p "$stage/KeyVaultEvents"
cp functions/KeyVaultEvents/function.json "$stage/KeyVaultEvents/"
install -m 0755 "$bin" "$stage/kvsync"
mkdir -p "$(dirname "$out")"
out_abs=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
rm -f "$out_abs"
(cd "$stage" && python3 - "$out_abs" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for root, _, files in os.walk("."):
        for f in sorted(files):
            path = os.path.join(root, f)
            info = zipfile.ZipInfo.from_file(path, os.path.relpath(path, "."))
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as fh:
                z.writestr(info, fh.read())
PY
)
echo "$out_abs"
