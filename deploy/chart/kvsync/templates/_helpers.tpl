{{/* Chart name, truncated to 63 characters (a DNS label). */}}
{{- define "kvsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart> unless the release name already contains the chart name. */}}
{{- define "kvsync.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Namespace of every namespaced resource. */}}
{{- define "kvsync.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{/* helm.sh/chart label value. */}}
{{- define "kvsync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels of every resource. */}}
{{- define "kvsync.labels" -}}
helm.sh/chart: {{ include "kvsync.chart" . }}
{{ include "kvsync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels: stable across upgrades. */}}
{{- define "kvsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kvsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* ServiceAccount name. */}}
{{- define "kvsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kvsync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference: digest wins over tag; the tag defaults to appVersion. */}}
{{- define "kvsync.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* True ("true") when any delivery authentication is configured. */}}
{{- define "kvsync.authConfigured" -}}
{{- if or .Values.auth.sharedSecret.existingSecret .Values.auth.entra.tenantId }}true{{ end }}
{{- end }}

{{/*
Fail rendering on configurations the binary would refuse or that are unsafe:
no authentication, insecure mode together with credentials or an Ingress, Entra without an audience,
Workload Identity without a client id, namespaced RBAC without namespaces.
*/}}
{{- define "kvsync.validate" -}}
{{- $auth := include "kvsync.authConfigured" . }}
{{- if and (not $auth) (not .Values.auth.insecureNoAuth) }}
{{- fail "kvsync: no delivery authentication configured. Set auth.sharedSecret.existingSecret (a Secret with one shared secret per line) and/or auth.entra.tenantId + auth.entra.audience, or (never on a reachable endpoint) auth.insecureNoAuth=true." }}
{{- end }}
{{- if and $auth .Values.auth.insecureNoAuth }}
{{- fail "kvsync: auth.insecureNoAuth=true cannot be combined with shared secrets or Entra ID (the binary refuses the ambiguity); unset one of them." }}
{{- end }}
{{- if and .Values.auth.insecureNoAuth .Values.ingress.enabled }}
{{- fail "kvsync: auth.insecureNoAuth=true cannot be combined with ingress.enabled: the webhook would accept unauthenticated deliveries from outside." }}
{{- end }}
{{- if and .Values.auth.entra.tenantId (not .Values.auth.entra.audience) }}
{{- fail "kvsync: auth.entra.audience is required with auth.entra.tenantId (the webhook app's client id or App ID URI)." }}
{{- end }}
{{- if and .Values.serviceAccount.workloadIdentity.enabled (not .Values.serviceAccount.workloadIdentity.clientId) }}
{{- fail "kvsync: serviceAccount.workloadIdentity.clientId is required when serviceAccount.workloadIdentity.enabled is true." }}
{{- end }}
{{- if and .Values.rbac.namespaced (not .Values.config.namespaces) }}
{{- fail "kvsync: rbac.namespaced=true needs config.namespaces (the namespaces to grant access in)." }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.hosts) }}
{{- fail "kvsync: ingress.hosts needs at least one host when ingress.enabled is true." }}
{{- end }}
{{- end }}

{{/* Whether to drop fixed ids for OpenShift's restricted SCC. */}}
{{- define "kvsync.adaptForOpenShift" -}}
{{- $mode := .Values.openshift.adaptSecurityContext }}
{{- if or (eq $mode "force") (and (eq $mode "auto") (.Capabilities.APIVersions.Has "security.openshift.io/v1")) }}true{{ end }}
{{- end }}

{{/* Render a security context value: strip `enabled`, and the fixed ids on OpenShift. */}}
{{- define "kvsync.securityContext" -}}
{{- $ctx := omit .context "enabled" }}
{{- if include "kvsync.adaptForOpenShift" .root }}
{{- $ctx = omit $ctx "runAsUser" "runAsGroup" "fsGroup" }}
{{- end }}
{{- toYaml $ctx }}
{{- end }}

{{/* Rules for the namespaced ESO kinds and events (ClusterRole, or a Role per namespace). */}}
{{- define "kvsync.rbac.namespacedRules" -}}
- apiGroups: ["external-secrets.io"]
  resources: ["externalsecrets", "secretstores"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["external-secrets.io"]
  resources: ["externalsecrets"]
  verbs: ["patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* Rules for the cluster-scoped kinds (always in the ClusterRole). */}}
{{- define "kvsync.rbac.clusterRules" -}}
- apiGroups: ["external-secrets.io"]
  resources: ["clustersecretstores", "clusterexternalsecrets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["external-secrets.io"]
  resources: ["clusterexternalsecrets"]
  verbs: ["patch"]
{{- if .Values.config.watchNamespaces }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- end }}
{{- end }}
