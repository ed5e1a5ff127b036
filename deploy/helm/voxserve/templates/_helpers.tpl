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

{{/* Settings shared by gateways and workers. */}}
{{- define "voxserve.env" -}}
- name: VOXSERVE_JOBS__QUEUE_URL
  value: {{ include "voxserve.redisUrl" . | quote }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- with .Values.engines }}
- name: VOXSERVE_ENGINES
  value: {{ toJson . | quote }}
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
