#!/usr/bin/env bash
# Creates the Key Vault system topic and the Event Grid subscription for kvsync with the Azure CLI:
# the same resources as keyvault-webhook.bicep (webhook) and keyvault-function.bicep (function).
#
#   create-subscription.sh webhook     # -> https://$WEBHOOK_HOST/api/eventgrid
#   create-subscription.sh function    # -> $FUNCTION_APP_ID/functions/KeyVaultEvents
#
# Settings (environment):
#   VAULT_NAME            Key Vault name (required)
#   RESOURCE_GROUP        resource group of the vault and the system topic (required)
#   VAULT_ID              vault ARM id (default: looked up with `az keyvault show`)
#   LOCATION              system topic region (default: the vault's region; it must be the vault's)
#   SYSTEM_TOPIC          system topic name (default: $VAULT_NAME-events; reused when it exists)
#   SUBSCRIPTION_NAME     event subscription name (default: kvsync, kvsync-function)
#   webhook mode, at least one of:
#     ENTRA_TENANT_ID + ENTRA_APP_ID_OR_URI   Entra ID bearer tokens (chart: auth.entra.tenantId/audience)
#     SHARED_SECRET or SHARED_SECRET_FILE     static secret header x-kvsync-key (chart: auth.sharedSecret)
#   WEBHOOK_HOST          public host of the kvsync Ingress (webhook mode, required)
#   FUNCTION_APP_ID       function app ARM id (function mode, required)
#   INCLUDE_ACCESS_POLICY_CHANGED  true: also deliver Microsoft.KeyVault.VaultAccessPolicyChanged
#   EVENT_DELIVERY_SCHEMA cloudeventschemav1_0 (webhook default) or eventgridschema (function default)
#   MAX_EVENTS_PER_BATCH  default 10
#   DEADLETTER_STORAGE_ID storage account ARM id for dead-lettering (optional)
#   DEADLETTER_CONTAINER  blob container for dead-lettering (default eventgrid-deadletter)
#   DRY_RUN=1             print the commands (secret masked) instead of running them
#
# kvsync must be running and Ready before this runs: creating the subscription performs the validation
# handshake. Note: the Azure CLI takes the shared secret as an argument, so it is visible in the process
# list of this machine while `az` runs; use the Bicep template where that matters.
set -euo pipefail

mode="${1:-}"
case "${mode}" in
    webhook | function) ;;
    *)
        echo "usage: $0 webhook|function   (settings in the environment; see the header of this script)" >&2
        exit 2
        ;;
esac

: "${VAULT_NAME:?set VAULT_NAME}"
: "${RESOURCE_GROUP:?set RESOURCE_GROUP}"
dry_run="${DRY_RUN:-0}"

# kvsync's contract: POST /api/eventgrid, header x-kvsync-key, Functions route KeyVaultEvents.
webhook_path="/api/eventgrid"
secret_header="x-kvsync-key"
function_name="KeyVaultEvents"

event_types=(
    Microsoft.KeyVault.SecretNewVersionCreated
    Microsoft.KeyVault.SecretNearExpiry
    Microsoft.KeyVault.SecretExpired
    Microsoft.KeyVault.CertificateNewVersionCreated
    Microsoft.KeyVault.CertificateNearExpiry
    Microsoft.KeyVault.CertificateExpired
    Microsoft.KeyVault.KeyNewVersionCreated
    Microsoft.KeyVault.KeyNearExpiry
    Microsoft.KeyVault.KeyExpired
)
if [[ "${INCLUDE_ACCESS_POLICY_CHANGED:-false}" == "true" ]]; then
    event_types+=(Microsoft.KeyVault.VaultAccessPolicyChanged)
fi

shared_secret="${SHARED_SECRET:-}"
if [[ -z "${shared_secret}" && -n "${SHARED_SECRET_FILE:-}" ]]; then
    # The first non-empty, non-comment line: the file format of the chart's shared-secrets Secret.
    shared_secret="$(grep -v -e '^[[:space:]]*$' -e '^#' "${SHARED_SECRET_FILE}" | head -n 1)"
fi

# Check every setting before the first command changes anything.
has_entra=0
if [[ "${mode}" == "webhook" ]]; then
    : "${WEBHOOK_HOST:?set WEBHOOK_HOST (the public host of the kvsync Ingress)}"
    if [[ -n "${ENTRA_TENANT_ID:-}" || -n "${ENTRA_APP_ID_OR_URI:-}" ]]; then
        : "${ENTRA_TENANT_ID:?set ENTRA_TENANT_ID together with ENTRA_APP_ID_OR_URI}"
        : "${ENTRA_APP_ID_OR_URI:?set ENTRA_APP_ID_OR_URI together with ENTRA_TENANT_ID}"
        has_entra=1
    fi
    if [[ "${has_entra}" == "0" && -z "${shared_secret}" ]]; then
        echo "$0: no delivery authentication: set ENTRA_TENANT_ID + ENTRA_APP_ID_OR_URI and/or SHARED_SECRET(_FILE)" >&2
        exit 2
    fi
else
    : "${FUNCTION_APP_ID:?set FUNCTION_APP_ID (the function app ARM id)}"
fi

# Prints (DRY_RUN=1) or runs a command; the shared secret never appears in printed output.
run() {
    if [[ "${dry_run}" == "1" ]]; then
        local out="" arg
        for arg in "$@"; do
            if [[ -n "${shared_secret}" && "${arg}" == "${shared_secret}" ]]; then
                arg="***"
            fi
            out+="$(printf '%q' "${arg}") "
        done
        echo "${out% }"
    else
        "$@"
    fi
}

if [[ -n "${VAULT_ID:-}" ]]; then
    vault_id="${VAULT_ID}"
elif [[ "${dry_run}" == "1" ]]; then
    vault_id="/subscriptions/<sub>/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft.KeyVault/vaults/${VAULT_NAME}"
else
    vault_id="$(az keyvault show -g "${RESOURCE_GROUP}" -n "${VAULT_NAME}" --query id -o tsv)"
fi
if [[ -n "${LOCATION:-}" ]]; then
    location="${LOCATION}"
elif [[ "${dry_run}" == "1" ]]; then
    location="<vault-region>"
else
    location="$(az keyvault show -g "${RESOURCE_GROUP}" -n "${VAULT_NAME}" --query location -o tsv)"
fi
topic="${SYSTEM_TOPIC:-${VAULT_NAME}-events}"

run az provider register --namespace Microsoft.EventGrid --wait

# A vault has at most one system topic: reuse it when it exists.
if [[ "${dry_run}" != "1" ]] && az eventgrid system-topic show -g "${RESOURCE_GROUP}" -n "${topic}" >/dev/null 2>&1; then
    echo "system topic ${topic} exists; reusing it" >&2
else
    run az eventgrid system-topic create -g "${RESOURCE_GROUP}" -n "${topic}" -l "${location}" \
        --topic-type microsoft.keyvault.vaults --source "${vault_id}"
fi

args=(
    az eventgrid system-topic event-subscription create
    -g "${RESOURCE_GROUP}" --system-topic-name "${topic}"
    --included-event-types "${event_types[@]}"
    --max-delivery-attempts 30 --event-ttl 1440
    --max-events-per-batch "${MAX_EVENTS_PER_BATCH:-10}" --preferred-batch-size-in-kilobytes 64
)

if [[ "${mode}" == "webhook" ]]; then
    args+=(
        -n "${SUBSCRIPTION_NAME:-kvsync}"
        --endpoint-type webhook
        --endpoint "https://${WEBHOOK_HOST}${webhook_path}"
        --event-delivery-schema "${EVENT_DELIVERY_SCHEMA:-cloudeventschemav1_0}"
    )
    if [[ "${has_entra}" == "1" ]]; then
        args+=(
            --azure-active-directory-tenant-id "${ENTRA_TENANT_ID}"
            --azure-active-directory-application-id-or-uri "${ENTRA_APP_ID_OR_URI}"
        )
    fi
    if [[ -n "${shared_secret}" ]]; then
        # NAME static VALUE ISSECRET: any non-empty ISSECRET means secret to the CLI; pass exactly "true".
        args+=(--delivery-attribute-mapping "${secret_header}" static "${shared_secret}" true)
    fi
else
    args+=(
        -n "${SUBSCRIPTION_NAME:-kvsync-function}"
        --endpoint-type azurefunction
        --endpoint "${FUNCTION_APP_ID}/functions/${function_name}"
        --event-delivery-schema "${EVENT_DELIVERY_SCHEMA:-eventgridschema}"
    )
fi

if [[ -n "${DEADLETTER_STORAGE_ID:-}" ]]; then
    args+=(--deadletter-endpoint "${DEADLETTER_STORAGE_ID}/blobServices/default/containers/${DEADLETTER_CONTAINER:-eventgrid-deadletter}")
fi

run "${args[@]}"
