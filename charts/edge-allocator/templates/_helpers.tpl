{{/*
Names, labels and small shared snippets. Every object carries the app.kubernetes.io/* labels;
selectors use only the stable subset (name, instance, component).
*/}}

{{- define "edge-allocator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "edge-allocator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<component>", kept within the 63-character name limit. */}}
{{- define "edge-allocator.componentName" -}}
{{- $full := include "edge-allocator.fullname" .root -}}
{{- printf "%s-%s" ($full | trunc (int (sub 62 (len .component)))) .component | trimSuffix "-" -}}
{{- end -}}

{{- define "edge-allocator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: {root, component}. */}}
{{- define "edge-allocator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edge-allocator.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of one component's objects: {root, component}. */}}
{{- define "edge-allocator.labels" -}}
{{ include "edge-allocator.selectorLabels" . }}
helm.sh/chart: {{ include "edge-allocator.chart" .root }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: edge-allocator
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The product image (operator and extender run the same one). */}}
{{- define "edge-allocator.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{- define "edge-allocator.schedulerImage" -}}
{{- printf "%s:%s" .Values.scheduler.image.repository .Values.scheduler.image.tag -}}
{{- end -}}

{{- define "edge-allocator.serviceAccountName" -}}
{{- if .root.Values.serviceAccount.create -}}
{{- include "edge-allocator.componentName" . -}}
{{- else -}}
{{- $names := .root.Values.serviceAccount.names -}}
{{- required (printf "serviceAccount.names.%s is required when serviceAccount.create is false" .component) (get $names .component) -}}
{{- end -}}
{{- end -}}

{{/* The Secret that holds the extender's serving certificate (tls.crt, tls.key, ca.crt). */}}
{{- define "edge-allocator.tlsSecretName" -}}
{{- default (include "edge-allocator.componentName" (dict "root" . "component" "extender-tls")) .Values.extender.tls.existingSecret -}}
{{- end -}}

{{- /* The Secret with the scheduler's client certificate (mutual TLS to the extender), and the
keys of its certificate and key in it: the generated Secret holds it as client.crt/client.key. */ -}}
{{- define "edge-allocator.clientTlsVolume" -}}
{{- if .Values.extender.tls.existingSecret -}}
secretName: {{ required "extender.tls.clientSecret: required when extender.tls.existingSecret is set and extender.tls.clientAuth is true (the default): name a Secret with kube-scheduler's client certificate (tls.crt, tls.key) signed by the CA in existingSecret, or set extender.tls.clientAuth=false" .Values.extender.tls.clientSecret }}
items:
  - {key: tls.crt, path: tls.crt}
  - {key: tls.key, path: tls.key}
{{- else -}}
secretName: {{ include "edge-allocator.tlsSecretName" . }}
items:
  - {key: client.crt, path: tls.crt}
  - {key: client.key, path: tls.key}
{{- end -}}
{{- end -}}

{{/* In-cluster DNS name of the extender Service. */}}
{{- define "edge-allocator.extenderHost" -}}
{{- printf "%s.%s.svc" (include "edge-allocator.componentName" (dict "root" . "component" "extender")) .Release.Namespace -}}
{{- end -}}

{{- define "edge-allocator.extenderURL" -}}
{{- printf "https://%s:%d" (include "edge-allocator.extenderHost" .) (int .Values.extender.service.port) -}}
{{- end -}}

{{/* Pod-level placement knobs shared by the three workloads: {values of the component}. */}}
{{- define "edge-allocator.podPlacement" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}

{{/* The Secret that holds the extender's admin-API bearer token (key "token"). */}}
{{- define "edge-allocator.adminTokenSecretName" -}}
{{- default (include "edge-allocator.componentName" (dict "root" . "component" "extender-admin")) .Values.extender.adminToken.existingSecret -}}
{{- end -}}
