{{/*
fullname: the release name when it contains the chart name (so release
"sandpit" gives "sandpit"), else "<release>-sandpit"; at most 63 characters.
*/}}
{{- define "sandpit.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* chart: name-version, for the helm.sh/chart label. */}}
{{- define "sandpit.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* selectorLabels: the labels that select the server pods; never change. */}}
{{- define "sandpit.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* labels: on every object the chart makes. */}}
{{- define "sandpit.labels" -}}
{{ include "sandpit.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "sandpit.chart" . }}
{{- end -}}

{{/* serviceAccountName: the ServiceAccount the server runs as. */}}
{{- define "sandpit.serviceAccountName" -}}
{{- include "sandpit.fullname" . -}}
{{- end -}}

{{/* storeSecret: the Secret holding the store URL. */}}
{{- define "sandpit.storeSecret" -}}
{{- if .Values.store.existingSecret -}}
{{- .Values.store.existingSecret -}}
{{- else -}}
{{- printf "%s-store" (include "sandpit.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* storeSecretKey: the key of the store URL in storeSecret. */}}
{{- define "sandpit.storeSecretKey" -}}
{{- if .Values.store.existingSecret -}}
{{- .Values.store.existingSecretKey | default "url" -}}
{{- else -}}
url
{{- end -}}
{{- end -}}

{{/* tokenSecret: the Secret holding the admin token. */}}
{{- define "sandpit.tokenSecret" -}}
{{- if .Values.token.existingSecret -}}
{{- .Values.token.existingSecret -}}
{{- else -}}
{{- printf "%s-token" (include "sandpit.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* tokenSecretKey: the key of the admin token in tokenSecret. */}}
{{- define "sandpit.tokenSecretKey" -}}
{{- if .Values.token.existingSecret -}}
{{- .Values.token.existingSecretKey | default "token" -}}
{{- else -}}
token
{{- end -}}
{{- end -}}

{{/* ingressHost: the API host of the Ingress. */}}
{{- define "sandpit.ingressHost" -}}
{{- .Values.ingress.host | default (printf "api.%s" .Values.domain) -}}
{{- end -}}
