{{- define "voxserve.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "voxserve.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "voxserve.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "voxserve.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "voxserve.redisUrl" -}}
{{- if .Values.redis.enabled -}}
redis://{{ include "voxserve.fullname" . }}-redis:6379/0
{{- else -}}
{{ required "redis.externalUrl is required when redis.enabled is false" .Values.redis.externalUrl }}
{{- end -}}
{{- end -}}

{{/* The worker pods' stable names (a StatefulSet behind a headless Service). */}}
{{- define "voxserve.workerService" -}}
{{ include "voxserve.fullname" . }}-worker
{{- end -}}

{{/*
The engine tables as one pod sees them (VOXSERVE_ENGINES). A table with `sidecarPort` is an engine
server running beside each worker (worker.sidecars): a worker drives its own, on 127.0.0.1; a gateway
balances over every worker pod's, by its stable name. Call with (dict "root" $ "role" "gateway").
*/}}
{{- define "voxserve.engines" -}}
{{- $root := .root -}}
{{- $role := .role -}}
{{- $tables := list -}}
{{- range $root.Values.engines -}}
{{- $table := omit . "sidecarPort" -}}
{{- if .sidecarPort -}}
{{- $port := .sidecarPort -}}
{{- $urls := list -}}
{{- if eq $role "worker" -}}
{{- $urls = list (printf "http://127.0.0.1:%v" $port) -}}
{{- else -}}
{{- $service := include "voxserve.workerService" $root -}}
{{- range $i := until (int $root.Values.worker.replicas) -}}
{{- $urls = append $urls (printf "http://%s-%d.%s:%v" $service $i $service $port) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $table "instances" $urls -}}
{{- end -}}
{{- $tables = append $tables $table -}}
{{- end -}}
{{- toJson $tables -}}
{{- end -}}

{{/* Host names the API answers: the Ingress host, the Service's names, and allowedHosts. */}}
{{- define "voxserve.allowedHosts" -}}
{{- $service := include "voxserve.fullname" . -}}
{{- $hosts := list $service (printf "%s.%s" $service .Release.Namespace) (printf "%s.%s.svc" $service .Release.Namespace) (printf "%s.%s.svc.cluster.local" $service .Release.Namespace) -}}
{{- if .Values.ingress.enabled -}}
{{- $hosts = prepend $hosts .Values.ingress.host -}}
{{- end -}}
{{- toJson (concat $hosts .Values.allowedHosts) -}}
{{- end -}}

{{/* Settings shared by gateways and workers; call with (dict "root" $ "role" "gateway"). */}}
{{- define "voxserve.env" -}}
{{- $root := .root -}}
{{- with $root -}}
- name: VOXSERVE_JOBS__QUEUE_URL
  value: {{ include "voxserve.redisUrl" . | quote }}
- name: VOXSERVE_AUTH__ALLOWED_HOSTS
  value: {{ include "voxserve.allowedHosts" . | quote }}
- name: VOXSERVE_EMBEDDED
  value: {{ .Values.embedded | quote }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- if .Values.engines }}
- name: VOXSERVE_ENGINES
  value: {{ include "voxserve.engines" (dict "root" . "role" $.role) | quote }}
{{- end }}
{{- with .Values.defaultEngine }}
- name: VOXSERVE_DEFAULT_ENGINE
  value: {{ . | quote }}
{{- end }}
{{- if eq .Values.storage.type "s3" }}
- name: VOXSERVE_STORAGE__URL
  value: {{ .Values.storage.s3.url | quote }}
{{- with .Values.storage.s3.endpointUrl }}
- name: VOXSERVE_STORAGE__ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.storage.s3.region }}
- name: VOXSERVE_STORAGE__REGION
  value: {{ . | quote }}
{{- end }}
{{- else }}
- name: VOXSERVE_STORAGE__URL
  value: /srv/voxserve-artifacts
{{- end }}
{{- with .Values.sentryDsnSecret }}
- name: VOXSERVE_SENTRY_DSN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: SENTRY_DSN
{{- end }}
{{- end }}
{{- end -}}

{{- define "voxserve.envFrom" -}}
{{- if and (eq .Values.storage.type "s3") .Values.storage.s3.existingSecret }}
envFrom:
  - secretRef:
      name: {{ .Values.storage.s3.existingSecret }}
{{- end }}
{{- end -}}

{{- define "voxserve.volumeMounts" -}}
- name: scratch
  mountPath: /var/lib/voxserve
{{- if eq .Values.storage.type "pvc" }}
- name: artifacts
  mountPath: /srv/voxserve-artifacts
{{- end }}
{{- if .Values.voiceFiles.volume }}
- name: voice-files
  mountPath: {{ .Values.voiceFiles.mountPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "voxserve.volumes" -}}
- name: scratch
  emptyDir:
    sizeLimit: {{ .Values.storage.scratchSize }}
{{- if eq .Values.storage.type "pvc" }}
- name: artifacts
  persistentVolumeClaim:
    claimName: {{ .Values.storage.pvc.existingClaim | default (printf "%s-artifacts" (include "voxserve.fullname" .)) }}
{{- end }}
{{- with .Values.voiceFiles.volume }}
- name: voice-files
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "voxserve.securityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
{{- end -}}

{{- define "voxserve.containerSecurity" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
{{- end -}}
