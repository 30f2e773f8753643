#!/usr/bin/env bash
# Lints and renders the Helm chart (deploy/chart/kvsync) with every value set in tests/fixtures/chart/,
# writes the rendered YAML to a directory, and checks that configurations the chart must refuse do fail.
# Fails on the first error. `cargo test --test deploy_chart` parses and asserts on the same renderings.
#
#   scripts/check-chart.sh [OUT_DIR]      # default OUT_DIR: target/chart-rendered
set -euo pipefail
cd "$(dirname "$0")/.."

chart=deploy/chart/kvsync
fixtures=tests/fixtures/chart
out="${1:-target/chart-rendered}"
helm="$(scripts/helm.sh)"
# The ServiceMonitor CRD is not in a `helm template` run's capabilities unless announced.
monitoring=(--api-versions monitoring.coreos.com/v1/ServiceMonitor)

mkdir -p "${out}"
echo "== helm ${helm} ($("${helm}" version --short))"

sets=("${fixtures}"/*.yaml)
if (( ${#sets[@]} < 3 )); then
    echo "check-chart: expected at least 3 value sets in ${fixtures}, found ${#sets[@]}" >&2
    exit 1
fi

# NOTES.txt is not part of `helm template` output: render it through a copy of the chart with one
# extra template that includes it, so a broken NOTES.txt fails here too.
notes_chart="$(mktemp -d)"
trap 'rm -rf "${notes_chart}"' EXIT
cp -r "${chart}" "${notes_chart}/kvsync"
cat >"${notes_chart}/kvsync/templates/zz-check-notes.yaml" <<'YAML'
apiVersion: v1
kind: ConfigMap
metadata:
  name: notes
data:
  notes: {{ include "kvsync/templates/NOTES.txt" . | quote }}
YAML

for values in "${sets[@]}"; do
    name="$(basename "${values}" .yaml)"
    echo "== ${name}: helm lint"
    # `helm lint` has no --api-versions: render the ServiceMonitor unconditionally while linting.
    "${helm}" lint --strict "${chart}" -f "${values}" --set serviceMonitor.renderMode=alwaysRender
    echo "== ${name}: helm template -> ${out}/${name}.yaml"
    "${helm}" template kvsync "${chart}" --namespace kvsync -f "${values}" "${monitoring[@]}" \
        >"${out}/${name}.yaml"
    "${helm}" template kvsync "${notes_chart}/kvsync" --namespace kvsync -f "${values}" "${monitoring[@]}" \
        --show-only templates/zz-check-notes.yaml >"${out}/${name}.NOTES.yaml"
    kinds="$(grep -E '^kind: ' "${out}/${name}.yaml" | sed 's/^kind: //' | sort | uniq -c | tr -s ' ' | tr '\n' ',')"
    echo "   rendered:${kinds%,}"
done

# Configurations that must not render. Each entry: a description, then helm --set arguments.
expect_failure() {
    local what="$1" pattern="$2"
    shift 2
    local log="${out}/must-fail.log"
    if "${helm}" template kvsync "${chart}" --namespace kvsync "$@" >/dev/null 2>"${log}"; then
        echo "check-chart: rendering succeeded but must fail: ${what}" >&2
        exit 1
    fi
    if ! grep -qF -- "${pattern}" "${log}"; then
        echo "check-chart: rendering failed for another reason than expected (${what}):" >&2
        cat "${log}" >&2
        exit 1
    fi
    echo "== refused as expected: ${what}"
}

expect_failure "no delivery authentication" "no delivery authentication configured"
expect_failure "insecureNoAuth with a shared secret" "cannot be combined with shared secrets" \
    --set auth.insecureNoAuth=true --set auth.sharedSecret.existingSecret=s
expect_failure "insecureNoAuth with an Ingress" "cannot be combined with ingress.enabled" \
    --set auth.insecureNoAuth=true --set ingress.enabled=true --set 'ingress.hosts={kvsync.example.com}'
expect_failure "Entra tenant without audience" "auth.entra.audience is required" \
    --set auth.entra.tenantId=t
expect_failure "Workload Identity without client id" "workloadIdentity.clientId is required" \
    --set auth.sharedSecret.existingSecret=s --set serviceAccount.workloadIdentity.enabled=true
expect_failure "namespaced RBAC without namespaces" "rbac.namespaced=true needs config.namespaces" \
    --set auth.sharedSecret.existingSecret=s --set rbac.namespaced=true
expect_failure "ServiceMonitor failIfMissing without the CRD" "failIfMissing" \
    --set auth.sharedSecret.existingSecret=s --set serviceMonitor.enabled=true \
    --set serviceMonitor.renderMode=failIfMissing
expect_failure "unknown value key (schema)" "Additional property replicas" \
    --set auth.sharedSecret.existingSecret=s --set replicas=3
expect_failure "unknown cloud (schema)" "config.cloud" \
    --set auth.sharedSecret.existingSecret=s --set config.cloud=mars

echo "check-chart: OK (${#sets[@]} value sets rendered to ${out})"
