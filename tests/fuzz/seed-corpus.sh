#!/usr/bin/env bash
# Seeds the fuzz corpora from eventgrid/samples/ (idempotent: seed files are rewritten, anything the
# fuzzer added is kept). Usage: tests/fuzz/seed-corpus.sh [CORPUS_DIR]   (default tests/fuzz/corpus)
# Input format of every target: header lines, an empty line, then the body (see src/lib.rs).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$HERE/corpus}
mkdir -p "$OUT"/delivery "$OUT"/binary_headers "$OUT"/functions "$OUT"/auth
python3 - "$ROOT/eventgrid/samples" "$OUT" "$HERE/fixtures/valid-token.txt" <<'PY'
import json, os, sys, glob, base64
samples, out, token_file = sys.argv[1:4]
def write(target, name, headers, body):
    head = "".join(f"{k}: {v}\n" for k, v in headers)
    # Targets other than `functions` read header lines up to the first empty line; `functions` is body only.
    data = body if target == "functions" else (head.encode() + b"\n" + body if headers else b"\n\n" + body)
    with open(os.path.join(out, target, "seed-" + name), "wb") as f:
        f.write(data)
for path in sorted(glob.glob(os.path.join(samples, "*.json"))):
    base = os.path.basename(path)
    if base.endswith(".headers.json") or base.endswith(".response.json"):
        continue
    stem = base[:-len(".json")]
    body = open(path, "rb").read()
    hpath = os.path.join(samples, stem + ".headers.json")
    headers = list(json.load(open(hpath)).items()) if os.path.exists(hpath) else [("content-type", "application/json; charset=utf-8")]
    if stem.startswith("functions-request"):
        write("functions", stem, [], body)
        write("functions", stem + "-binding", [], b"EventGridEvent\n" + body)
        continue
    write("delivery", stem, headers, body)
    if any(k.startswith("ce-") for k, _ in headers):
        write("binary_headers", stem, headers, body)
        # Percent-encoded attributes and a text body.
        enc = [(k, v.replace("/", "%2F") if k == "ce-source" else v) for k, v in headers]
        write("binary_headers", stem + "-pct", enc, body)
        write("binary_headers", stem + "-text", [(k, v) for k, v in headers if k != "content-type"] + [("content-type", "text/plain")], b"not json")
token = open(token_file).read().strip()
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
h, p, s = token.split(".")
auth = {
    "valid-token": ([("authorization", f"Bearer {token}")], b""),
    "secret-header": ([("x-kvsync-key", "fuzz-shared-secret-0123456789")], b""),
    "secret-query": ([], b"code=fuzz-shared-secret-0123456789&x=1"),
    "secret-query-pct": ([], b"code=fuzz%2Dshared-secret-0123456789"),
    "wrong-secret": ([("x-kvsync-key", "nope")], b"code=nope"),
    "alg-none": ([("authorization", "Bearer " + b64(b'{"alg":"none","kid":"fuzz-key"}') + "." + p + ".")], b""),
    "alg-hs256": ([("authorization", "Bearer " + b64(b'{"alg":"HS256","kid":"fuzz-key"}') + "." + p + "." + s)], b""),
    "unknown-kid": ([("authorization", "Bearer " + b64(b'{"alg":"RS256","kid":"other"}') + "." + p + "." + s)], b""),
    "bad-signature": ([("authorization", f"Bearer {h}.{p}.{s[:-4]}AAAA")], b""),
    "two-tokens": ([("authorization", f"Bearer {token}"), ("authorization", f"Bearer {token}")], b""),
    "basic": ([("authorization", "Basic dXNlcjpwYXNz")], b""),
}
for name, (headers, query) in auth.items():
    write("auth", name, headers, query)
PY
echo "seeded $(find "$OUT" -name 'seed-*' | wc -l) files in $OUT"
