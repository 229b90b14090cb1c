{{/*
Names. Every resource name starts with the fullname, so two releases (in different namespaces) never
collide on cluster-scoped objects. One release per cluster is what makes sense, though: the CRDs and the
rendered policy ConfigMaps are cluster-wide.
*/}}
{{- define "claude-guard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "claude-guard.fullname" -}}
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

{{/* <fullname>-<suffix>, within the 63 characters of a DNS label. */}}
{{- define "claude-guard.resourceName" -}}
{{- $full := include "claude-guard.fullname" .ctx }}
{{- printf "%s-%s" ($full | trunc (int (sub 62 (len .suffix)))) .suffix | replace "--" "-" }}
{{- end }}

{{- define "claude-guard.managerName" -}}{{ include "claude-guard.resourceName" (dict "ctx" . "suffix" "manager") }}{{- end }}
{{- define "claude-guard.webhookServiceName" -}}{{ include "claude-guard.resourceName" (dict "ctx" . "suffix" "webhook-service") }}{{- end }}
{{- define "claude-guard.webhookConfigName" -}}{{ include "claude-guard.resourceName" (dict "ctx" . "suffix" "injector") }}{{- end }}
{{- define "claude-guard.webhookSecretName" -}}{{ include "claude-guard.resourceName" (dict "ctx" . "suffix" "webhook-certs") }}{{- end }}
{{- define "claude-guard.certificateName" -}}{{ include "claude-guard.resourceName" (dict "ctx" . "suffix" "webhook") }}{{- end }}
{{- define "claude-guard.issuerName" -}}{{ include "claude-guard.resourceName" (dict "ctx" . "suffix" "selfsigned") }}{{- end }}
{{- define "claude-guard.metricsServiceName" -}}{{ include "claude-guard.resourceName" (dict "ctx" . "suffix" "metrics") }}{{- end }}
{{- define "claude-guard.leaderElectionName" -}}{{ include "claude-guard.resourceName" (dict "ctx" . "suffix" "leader-election") }}{{- end }}
{{- define "claude-guard.configProtectionName" -}}{{ include "claude-guard.resourceName" (dict "ctx" . "suffix" "config-protection") }}{{- end }}
{{- define "claude-guard.metricsTokenSecretName" -}}{{ include "claude-guard.resourceName" (dict "ctx" . "suffix" "metrics-token") }}{{- end }}
{{- define "claude-guard.sidecarProtectionName" -}}{{ include "claude-guard.resourceName" (dict "ctx" . "suffix" "sidecar-protection") }}{{- end }}
{{- /* The injected container's name (internal/wellknown.SidecarContainerName; test/chart compares them). */ -}}
{{- define "claude-guard.sidecarContainerName" -}}claude-guard-sidecar{{- end }}
{{- define "claude-guard.gatewayName" -}}{{ include "claude-guard.resourceName" (dict "ctx" . "suffix" "gateway") }}{{- end }}
{{- define "claude-guard.vaultCAName" -}}{{ include "claude-guard.resourceName" (dict "ctx" . "suffix" "vault-ca") }}{{- end }}

{{- define "claude-guard.labels" -}}
{{ include "claude-guard.componentLabels" (dict "ctx" . "component" "manager") }}
{{- end }}

{{/*
Labels of the objects of one component (manager, tenant-rbac, config-protection, gateway): the
component keeps each one's pods and selectors apart from the manager's.
*/}}
{{- define "claude-guard.componentLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "claude-guard.componentSelectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{/* The manager's pods; also what the webhook and metrics Services select. */}}
{{- define "claude-guard.selectorLabels" -}}
{{ include "claude-guard.componentSelectorLabels" (dict "ctx" . "component" "manager") }}
{{- end }}

{{- define "claude-guard.componentSelectorLabels" -}}
app.kubernetes.io/name: {{ include "claude-guard.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* An image: <repository>@<digest> when a digest pins it (docs/images.md), else <repository>:<tag>. */}}
{{- define "claude-guard.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/* The manager gets its own certificate rotation unless cert-manager provides the certificate. */}}
{{- define "claude-guard.selfManagedCerts" -}}
{{- if not .Values.webhook.certManager.enabled }}true{{ end }}
{{- end }}

{{/* The Redis credential broker is on: per-namespace Redis users, a trust domain and a SPIFFE socket. */}}
{{- define "claude-guard.redisBroker" -}}
{{- if and .Values.redis.broker.enabled (or .Values.redis.url .Values.redis.existingSecret.name) .Values.redis.perNamespaceUsers .Values.spiffe.trustDomain (ne .Values.spiffe.socket.mode "None") }}true{{ end }}
{{- end }}
{{- define "claude-guard.redisBrokerServiceName" -}}{{ include "claude-guard.resourceName" (dict "ctx" . "suffix" "redis-broker") }}{{- end }}

{{/* Where the manager reads the Vault CA bundle, if one is configured. */}}
{{- define "claude-guard.vaultCAConfigMap" -}}
{{- if .Values.vault.caBundle }}{{ include "claude-guard.vaultCAName" . }}{{ else }}{{ .Values.vault.existingCAConfigMap.name }}{{ end }}
{{- end }}
{{- define "claude-guard.vaultCAKey" -}}
{{- if .Values.vault.caBundle }}ca.crt{{ else }}{{ .Values.vault.existingCAConfigMap.key }}{{ end }}
{{- end }}

{{/* The Secret holding the gateway's serving certificate: the user's, cert-manager's, or none (SVID). */}}
{{- define "claude-guard.gatewayTLSSecret" -}}
{{- if .Values.gateway.tls.secretName }}{{ .Values.gateway.tls.secretName }}
{{- else if .Values.gateway.tls.certManager.enabled }}{{ include "claude-guard.resourceName" (dict "ctx" . "suffix" "gateway-tls") }}
{{- end }}
{{- end }}

{{/* The gateway's cert-manager issuer: its own, else the webhook's (docs/values.md). */}}
{{- define "claude-guard.gatewayIssuer" -}}
{{- if .Values.gateway.tls.certManager.issuerRef.name }}{{ toJson .Values.gateway.tls.certManager.issuerRef }}
{{- else }}{{ toJson .Values.webhook.certManager.issuerRef }}
{{- end }}
{{- end }}

{{/*
claude-guard.otelEnv: the OTEL_* variables of a sidecar or the gateway when telemetry.otlp.endpoint is
set, the same ones the webhook gives injected sidecars (internal/inject Telemetry.Env; test/chart
TestGatewayTelemetryIsTheInjectedSidecars compares them).
*/}}
{{- define "claude-guard.otelEnv" -}}
{{- with .Values.telemetry.otlp }}
{{- if .endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: http/protobuf
- name: OTEL_SERVICE_NAME
  value: claude-guard-sidecar
- name: OTEL_TRACES_SAMPLER
  value: parentbased_traceidratio
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .traceSampleRatio | default "0.1" | quote }}
- name: OTEL_METRIC_EXPORT_INTERVAL
  value: {{ mul .metricExportIntervalSeconds 1000 | quote }}
{{- end }}
{{- end }}
{{- end }}
