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
{{- if and (eq .Values.spiffe.socket.mode "HostPath") (not .Values.spiffe.socket.hostPath) }}
{{- fail "spiffe.socket.mode is HostPath but spiffe.socket.hostPath is empty" }}
{{- end }}
{{- if eq (int .Values.sidecar.port) 9787 }}
{{- fail "sidecar.port 9787 is the sidecar's own metrics and health port: pick another" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (or (eq (int .Values.metrics.port) 0) (not .Values.metrics.service.enabled)) }}
{{- fail "metrics.serviceMonitor.enabled needs the metrics Service: set metrics.port and metrics.service.enabled" }}
{{- end }}
{{- $ports := list (int .Values.webhook.port) 8081 }}
{{- if ne (int .Values.metrics.port) 0 }}{{ $ports = append $ports (int .Values.metrics.port) }}{{ end }}
{{- if ne (len $ports) (len (uniq $ports)) }}
{{- fail (printf "webhook.port (%d), metrics.port (%d) and the health probe port (8081) must differ" (int .Values.webhook.port) (int .Values.metrics.port)) }}
{{- end }}
{{- end }}
