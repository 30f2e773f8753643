// Key Vault system topic + Event Grid subscription delivering to the kvsync webhook
// (https://<webhookHost>/api/eventgrid, exposed by the Helm chart's Ingress).
//
//   az deployment group create -g <vault-rg> -f keyvault-webhook.bicep \
//     -p vaultName=<vault> webhookHost=kvsync.example.com \
//        entraTenantId=<tenant-guid> entraAppIdOrUri=api://kvsync-webhook   # and/or sharedSecret=<secret>
//
// Before deploying:
// - kvsync must be running and Ready: creating the subscription runs the validation handshake.
// - `az provider register --namespace Microsoft.EventGrid`.
// - The deployer needs Microsoft.EventGrid/eventSubscriptions/write on the vault ("EventGrid
//   EventSubscription Contributor"), and for Entra delivery the app-role assignment
//   `AzureEventGridSecureWebhookSubscriber` on the webhook app (see the README of the chart / eventgrid.md).
// - Configure at least one authentication mode; it must match the chart's `auth.*` values
//   (entra.tenantId/audience, sharedSecret.existingSecret holding the same secret).
// - A vault can have only one system topic: set createSystemTopic=false and systemTopicName to reuse one.

@description('Name of the Key Vault whose events are delivered (in this resource group).')
param vaultName string

@description('Region of the system topic; must be the vault\'s region.')
param location string = resourceGroup().location

@description('Name of the Key Vault system topic.')
param systemTopicName string = '${vaultName}-events'

@description('Create the system topic (false: reuse the existing topic named systemTopicName).')
param createSystemTopic bool = true

@description('Name of the event subscription (kvsync can restrict deliveries to it: auth.allowedSubscriptions).')
param subscriptionName string = 'kvsync'

@description('Public HTTPS host of the kvsync Ingress; the endpoint is https://<host>/api/eventgrid.')
param webhookHost string

@description('Entra tenant that issues the delivery tokens (chart: auth.entra.tenantId). Empty: no Entra auth.')
param entraTenantId string = ''

@description('Webhook app client id or App ID URI, the token audience (chart: auth.entra.audience).')
param entraAppIdOrUri string = ''

@secure()
@description('Shared secret sent in the x-kvsync-key header (chart: auth.sharedSecret). Empty: no header.')
param sharedSecret string = ''

@description('Also deliver Microsoft.KeyVault.VaultAccessPolicyChanged.')
param includeAccessPolicyChanged bool = false

@description('Event schema of deliveries; kvsync accepts both.')
@allowed([
  'CloudEventSchemaV1_0'
  'EventGridSchema'
])
param eventDeliverySchema string = 'CloudEventSchemaV1_0'

@description('Events per delivery (a batch is acknowledged as a whole).')
@minValue(1)
@maxValue(5000)
param maxEventsPerBatch int = 10

@description('Preferred delivery size in kilobytes.')
@minValue(1)
@maxValue(1024)
param preferredBatchSizeInKilobytes int = 64

@description('Only objects whose name starts with this (the Key Vault event subject is the object name). Empty: all.')
param subjectBeginsWith string = ''

@description('Delivery attempts before an event is dropped or dead-lettered.')
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int = 30

@description('Minutes an event is retried before it is dropped or dead-lettered.')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

@description('Resource id of a storage account for undeliverable events. Empty: no dead-lettering.')
param deadLetterStorageAccountId string = ''

@description('Blob container (must exist) for dead-lettered events.')
param deadLetterContainerName string = 'eventgrid-deadletter'

// The header name and path are kvsync's contract (KVSYNC_SECRET_HEADER default, POST /api/eventgrid).
var secretHeaderName = 'x-kvsync-key'
var endpointUrl = 'https://${webhookHost}/api/eventgrid'

var keyVaultObjectEventTypes = [
  'Microsoft.KeyVault.SecretNewVersionCreated'
  'Microsoft.KeyVault.SecretNearExpiry'
  'Microsoft.KeyVault.SecretExpired'
  'Microsoft.KeyVault.CertificateNewVersionCreated'
  'Microsoft.KeyVault.CertificateNearExpiry'
  'Microsoft.KeyVault.CertificateExpired'
  'Microsoft.KeyVault.KeyNewVersionCreated'
  'Microsoft.KeyVault.KeyNearExpiry'
  'Microsoft.KeyVault.KeyExpired'
]
var accessPolicyEventTypes = includeAccessPolicyChanged ? [
  'Microsoft.KeyVault.VaultAccessPolicyChanged'
] : []

var useEntra = !empty(entraTenantId) && !empty(entraAppIdOrUri)
var entraProperties = useEntra ? {
  azureActiveDirectoryTenantId: entraTenantId
  azureActiveDirectoryApplicationIdOrUri: entraAppIdOrUri
} : {}
var headerProperties = empty(sharedSecret) ? {} : {
  deliveryAttributeMappings: [
    {
      name: secretHeaderName
      type: 'Static'
      properties: {
        value: sharedSecret
        isSecret: true
      }
    }
  ]
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = if (createSystemTopic) {
  name: systemTopicName
  location: location
  properties: {
    source: vault.id
    topicType: 'Microsoft.KeyVault.vaults'
  }
}

resource subscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  name: '${systemTopicName}/${subscriptionName}'
  dependsOn: [
    systemTopic
  ]
  properties: {
    eventDeliverySchema: eventDeliverySchema
    destination: {
      endpointType: 'WebHook'
      properties: union({
        endpointUrl: endpointUrl
        maxEventsPerBatch: maxEventsPerBatch
        preferredBatchSizeInKilobytes: preferredBatchSizeInKilobytes
        minimumTlsVersionAllowed: '1.2'
      }, entraProperties, headerProperties)
    }
    filter: union({
      includedEventTypes: concat(keyVaultObjectEventTypes, accessPolicyEventTypes)
    }, empty(subjectBeginsWith) ? {} : {
      subjectBeginsWith: subjectBeginsWith
    })
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    deadLetterDestination: empty(deadLetterStorageAccountId) ? null : {
      endpointType: 'StorageBlob'
      properties: {
        resourceId: deadLetterStorageAccountId
        blobContainerName: deadLetterContainerName
      }
    }
  }
}

@description('Resource id of the system topic.')
output systemTopicId string = resourceId('Microsoft.EventGrid/systemTopics', systemTopicName)

@description('Resource id of the event subscription.')
output subscriptionId string = subscription.id

@description('The webhook endpoint Event Grid delivers to.')
output webhookEndpoint string = endpointUrl

@description('Whether deliveries carry an Entra ID bearer token.')
output entraAuthentication bool = useEntra
