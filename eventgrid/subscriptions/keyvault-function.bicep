// Key Vault system topic + Event Grid subscription delivering to kvsync running as an Azure Functions
// custom handler (`kvsync functions`): endpoint type AzureFunction, function `KeyVaultEvents`.
//
//   az deployment group create -g <vault-rg> -f keyvault-function.bicep \
//     -p vaultName=<vault> functionAppId=/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Web/sites/<app>
//
// Deploy the function app (with functions/KeyVaultEvents/function.json, an eventGridTrigger) first:
// creating the subscription validates the endpoint, and Event Grid fetches the function's system key
// with its own identity (no delivery header or Entra token is involved).

@description('Name of the Key Vault whose events are delivered (in this resource group).')
param vaultName string

@description('Region of the system topic; must be the vault\'s region.')
param location string = resourceGroup().location

@description('Name of the Key Vault system topic.')
param systemTopicName string = '${vaultName}-events'

@description('Create the system topic (false: reuse the existing topic named systemTopicName).')
param createSystemTopic bool = true

@description('Name of the event subscription.')
param subscriptionName string = 'kvsync-function'

@description('Resource id of the function app (Microsoft.Web/sites).')
param functionAppId string

@description('Also deliver Microsoft.KeyVault.VaultAccessPolicyChanged.')
param includeAccessPolicyChanged bool = false

@description('Event schema of deliveries; kvsync accepts both.')
@allowed([
  'CloudEventSchemaV1_0'
  'EventGridSchema'
])
param eventDeliverySchema string = 'EventGridSchema'

@description('Events per delivery.')
@minValue(1)
@maxValue(5000)
param maxEventsPerBatch int = 10

@description('Preferred delivery size in kilobytes.')
@minValue(1)
@maxValue(1024)
param preferredBatchSizeInKilobytes int = 64

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

// kvsync's contract: the custom handler serves POST /KeyVaultEvents for the function of that name.
var functionName = 'KeyVaultEvents'

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
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/${functionName}'
        maxEventsPerBatch: maxEventsPerBatch
        preferredBatchSizeInKilobytes: preferredBatchSizeInKilobytes
      }
    }
    filter: {
      includedEventTypes: concat(keyVaultObjectEventTypes, accessPolicyEventTypes)
    }
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

@description('Resource id of the event subscription.')
output subscriptionId string = subscription.id

@description('The function Event Grid delivers to.')
output functionResourceId string = '${functionAppId}/functions/${functionName}'
