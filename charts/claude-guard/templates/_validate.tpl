{{/*
Rules that span several values: values.schema.json checks each value alone; these fail `helm install`
and `helm template` with a message that names the values to change.
*/}}
{{- define "claude-guard.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicaCount is %d but leaderElection.enabled is false: replicas would reconcile concurrently and fight over the rendered ConfigMaps; enable leader election or run one replica" (int .Values.replicaCount)) }}
{{- end }}
{{- if and .Values.vault.caBundle .Values.vault.existingCAConfigMap.name }}
{{- fail "vault.caBundle and vault.existingCAConfigMap.name are both set: give the Vault CA bundle one way" }}
{{- end }}
{{- if and (or .Values.vault.caBundle .Values.vault.existingCAConfigMap.name) (not .Values.vault.address) }}
{{- fail "a Vault CA bundle is set but vault.address is empty: set vault.address (the CA only verifies it)" }}
{{- end }}
{{- if and (eq .Values.spiffe.socket.mode "CSI") (not .Values.spiffe.socket.csiDriver) }}
{{- fail "spiffe.socket.mode is CSI but spiffe.socket.csiDriver is empty" }}
{{- end }}
{{- if and (eq .Values.spiffe.registration.mode "ClusterStaticEntry") (not .Values.spiffe.registration.clusterName) }}
{{- fail "spiffe.registration.mode is ClusterStaticEntry but spiffe.registration.clusterName is empty: set it to the cluster name of the SPIRE agents' k8s_psat attestor" }}
{{- end }}
{{- if and (eq .Values.spiffe.socket.mode "HostPath") (not .Values.spiffe.socket.hostPath) }}
{{- fail "spiffe.socket.mode is HostPath but spiffe.socket.hostPath is empty" }}
{{- end }}
{{- if eq (int .Values.sidecar.port) 9787 }}
{{- fail "sidecar.port 9787 is the sidecar's own metrics and health port: pick another" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (or (eq (int .Values.metrics.port) 0) (not .Values.metrics.service.enabled)) }}
{{- fail "metrics.serviceMonitor.enabled needs the metrics Service: set metrics.port and metrics.service.enabled" }}
{{- end }}
{{- if and .Values.configProtection.enabled (semverCompare "<1.30.0-0" .Capabilities.KubeVersion.Version) }}
{{- fail (printf "configProtection.enabled needs Kubernetes 1.30 or later (ValidatingAdmissionPolicy v1) and the cluster is %s: upgrade it, or set configProtection.enabled=false and bind tenants' admins the policy editor role instead of \"admin\" or \"edit\" (both can write the rendered sidecar ConfigMaps)" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- if and .Values.sidecarProtection.enabled (semverCompare "<1.30.0-0" .Capabilities.KubeVersion.Version) }}
{{- fail (printf "sidecarProtection.enabled needs Kubernetes 1.30 or later (ValidatingAdmissionPolicy v1) and the cluster is %s: upgrade it, or set sidecarProtection.enabled=false knowing that every namespace admin who may exec into pods can then read their namespace's Anthropic key (docs/threat-model.md)" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- $ports := list (int .Values.webhook.port) 8081 }}
{{- if ne (int .Values.metrics.port) 0 }}{{ $ports = append $ports (int .Values.metrics.port) }}{{ end }}
{{- if ne (len $ports) (len (uniq $ports)) }}
{{- fail (printf "webhook.port (%d), metrics.port (%d) and the health probe port (8081) must differ" (int .Values.webhook.port) (int .Values.metrics.port)) }}
{{- end }}
{{- end }}

{{/* Rules between the gateway's values (only when gateway.enabled). */}}
{{- define "claude-guard.validateGateway" -}}
{{- $gw := .Values.gateway }}
{{- if not $gw.namespace }}
{{- fail "gateway.enabled is true but gateway.namespace is empty: set the tenant namespace the gateway runs in (the namespace of gateway.policy)" }}
{{- end }}
{{- if not $gw.policy }}
{{- fail "gateway.enabled is true but gateway.policy is empty: name the ClaudeAccessPolicy in gateway.namespace whose rendered config the gateway enforces (its endUser.mode must be Strict)" }}
{{- end }}
{{- if and $gw.tls.secretName $gw.tls.certManager.enabled }}
{{- fail "gateway.tls.secretName and gateway.tls.certManager.enabled are both set: give the gateway's certificate one way" }}
{{- end }}
{{- if not (or $gw.tls.secretName $gw.tls.certManager.enabled $gw.clientTrustDomain) }}
{{- fail "the gateway serves TLS only and has no certificate: set gateway.tls.secretName (a kubernetes.io/tls Secret in gateway.namespace), gateway.tls.certManager.enabled, or gateway.clientTrustDomain (mTLS with the gateway's own SPIFFE certificate)" }}
{{- end }}
{{- if and $gw.tls.certManager.enabled (not (include "claude-guard.gatewayIssuer" . | fromJson).name) }}
{{- fail "gateway.tls.certManager.enabled needs an issuer: set gateway.tls.certManager.issuerRef or webhook.certManager.issuerRef (a ClusterIssuer, or an Issuer in gateway.namespace); the webhook's self-signed Issuer would give callers a certificate they cannot verify" }}
{{- end }}
{{- if and $gw.clientTrustDomain (eq .Values.spiffe.socket.mode "None") }}
{{- fail "gateway.clientTrustDomain needs the SPIFFE Workload API but spiffe.socket.mode is None: set it to CSI or HostPath" }}
{{- end }}
{{- if and $gw.credentials.secretRef.name $gw.credentials.vaultKubernetesAuth }}
{{- fail "gateway.credentials.secretRef.name and gateway.credentials.vaultKubernetesAuth are both set: a policy has one credential source; mount what gateway.policy uses" }}
{{- end }}
{{- if eq (int $gw.port) (int $gw.metricsPort) }}
{{- fail (printf "gateway.port and gateway.metricsPort are both %d: the TLS listener and the metrics and health listener need their own ports" (int $gw.port)) }}
{{- end }}
{{- end }}
