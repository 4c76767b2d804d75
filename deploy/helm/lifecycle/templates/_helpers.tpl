{{/*
The four services as the code defines them: module, settings prefix, port, consumer group and the topics
the consumer reads (keys of .Values.kafka.partitions). Kept in step with the services' main.py.
*/}}
{{- define "lifecycle.services" -}}
ingest:
  values: ingest
  module: lifecycle_ingest
  prefix: LIFECYCLE_INGEST_
  port: 8000
  database: lifecycle_ingest
  group: ingest
  topics: [stageTransitions]
  adminToken: ingestAdminTokenKey
  apiTokens: true
  erasure: true
stage-engine:
  values: stageEngine
  module: lifecycle_stage_engine
  prefix: LIFECYCLE_STAGE_ENGINE_
  port: 8001
  database: lifecycle_stage_engine
  group: stage-engine
  topics: [touchpoints]
  adminToken: stageEngineAdminTokenKey
  apiTokens: true
  erasure: true
messaging:
  values: messaging
  module: lifecycle_messaging
  prefix: LIFECYCLE_MESSAGING_
  port: 8002
  database: lifecycle_messaging
  group: messaging
  topics: [stageTransitions, touchpoints, loyaltyEvents]
  adminToken: messagingAdminTokenKey
  apiTokens: true
  erasure: true
loyalty:
  values: loyalty
  module: lifecycle_loyalty
  prefix: LIFECYCLE_LOYALTY_
  port: 8003
  database: lifecycle_loyalty
  group: loyalty
  topics: [touchpoints, stageTransitions]
  adminToken: ""
  apiTokens: true
  erasure: true
{{- end }}

{{/*
The Deployments: ingest runs `serve --role all` (its routes, and its one consumer, which follows erasures by
destroying the customer's data keys without holding readiness: docs/erasure.md); the three other services are
split into an API Deployment (`--role api`: the routes) and a consumer Deployment (`--role consumer`: consumers,
workers, outbox relay), so reads keep answering while consumers restart or scale, and KEDA scales only those
consumers.
*/}}
{{- define "lifecycle.components" -}}
- {name: ingest, service: ingest, role: all}
- {name: stage-engine-api, service: stage-engine, role: api}
- {name: stage-engine-consumer, service: stage-engine, role: consumer}
- {name: messaging-api, service: messaging, role: api}
- {name: messaging-consumer, service: messaging, role: consumer}
- {name: loyalty-api, service: loyalty, role: api}
- {name: loyalty-consumer, service: loyalty, role: consumer}
{{- end }}

{{/* Topic names by partitions key. */}}
{{- define "lifecycle.topicNames" -}}
touchpoints: touchpoints.v1
stageTransitions: stage-transitions.v1
loyaltyEvents: loyalty-events.v1
{{- end }}

{{/* A component's values: .Values.ingest for ingest, else .Values.<service>.<role>. Call with (list $ component). */}}
{{- define "lifecycle.componentValues" -}}
{{- $root := index . 0 -}}
{{- $c := index . 1 -}}
{{- $svc := index (include "lifecycle.services" $root | fromYaml) $c.service -}}
{{- $sv := index $root.Values $svc.values -}}
{{- if eq $c.service "ingest" -}}
{{- toYaml $sv -}}
{{- else -}}
{{- toYaml (index $sv $c.role) -}}
{{- end -}}
{{- end }}

{{/* `<release>-<name>`, at most 63 characters: the release name is shortened, never `name` (so two objects
of a kind never collide). */}}
{{- define "lifecycle.name" -}}
{{- $release := .root.Release.Name | trunc (int (sub 62 (len .name))) | trimSuffix "-" -}}
{{- printf "%s-%s" $release .name -}}
{{- end }}

{{- define "lifecycle.labels" -}}
app.kubernetes.io/name: lifecycle
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
app.kubernetes.io/part-of: lifecycle
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end }}

{{- define "lifecycle.selectorLabels" -}}
app.kubernetes.io/name: lifecycle
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* The services' image: tag (default appVersion) or digest; never `latest`. */}}
{{- define "lifecycle.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if eq (lower $tag) "latest" -}}
{{- fail "image.tag: `latest` is not allowed; pin a version" -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end }}

{{- define "lifecycle.kafkaBootstrap" -}}
{{- if .Values.strimzi.enabled -}}
{{- printf "%s-kafka-bootstrap:9092" .Values.strimzi.clusterName -}}
{{- else -}}
{{- required "kafka.bootstrapServers is required (or strimzi.enabled)" .Values.kafka.bootstrapServers -}}
{{- end -}}
{{- end }}

{{/* The smallest partition count of a consumer's topics: its KEDA maxReplicaCount may not exceed it. */}}
{{- define "lifecycle.minPartitions" -}}
{{- $root := index . 0 -}}
{{- $topics := index . 1 -}}
{{- $min := 0 -}}
{{- range $topics -}}
{{- $p := int (index $root.Values.kafka.partitions .) -}}
{{- if or (eq $min 0) (lt $p $min) -}}{{- $min = $p -}}{{- end -}}
{{- end -}}
{{- $min -}}
{{- end }}

{{/* The service's database URL, by reference: CloudNativePG's `<cluster>-app` Secret (user and password
expanded into the URL by Kubernetes), or a Secret holding the whole URL. Call with (list $ svcName). */}}
{{- define "lifecycle.databaseEnv" -}}
{{- $root := index . 0 -}}
{{- $svc := index (include "lifecycle.services" $root | fromYaml) (index . 1) -}}
{{- $sv := index $root.Values $svc.values -}}
{{- if $root.Values.cnpg.enabled }}
- name: LIFECYCLE_DB_USER
  valueFrom:
    secretKeyRef: {name: {{ printf "%s-app" $root.Values.cnpg.clusterName }}, key: username}
- name: LIFECYCLE_DB_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ printf "%s-app" $root.Values.cnpg.clusterName }}, key: password}
- name: {{ $svc.prefix }}DATABASE_URL
  value: {{ printf "postgresql+asyncpg://$(LIFECYCLE_DB_USER):$(LIFECYCLE_DB_PASSWORD)@%s-rw:%d/%s" $root.Values.cnpg.clusterName (int $root.Values.postgres.port) $svc.database | quote }}
{{- else }}
- name: {{ $svc.prefix }}DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ required (printf "%s.database.existingSecret is required" $svc.values) $sv.database.existingSecret }}, key: {{ $sv.database.key }}}
{{- end }}
{{- end }}

{{/* The environment every container of a service gets (settings, secrets by reference). Call with (list $ svcName). */}}
{{- define "lifecycle.env" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $svc := index (include "lifecycle.services" $root | fromYaml) $name -}}
{{- $sv := index $root.Values $svc.values -}}
{{- include "lifecycle.databaseEnv" (list $root $name) }}
{{- if $svc.apiTokens }}
- name: LIFECYCLE_API_TOKENS
  valueFrom:
    secretKeyRef: {name: {{ required "tokens.existingSecret is required" $root.Values.tokens.existingSecret }}, key: {{ $root.Values.tokens.apiTokensKey }}}
{{- end }}
{{- if $svc.adminToken }}
- name: {{ $svc.prefix }}ADMIN_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ required "tokens.existingSecret is required" $root.Values.tokens.existingSecret }}, key: {{ index $root.Values.tokens $svc.adminToken }}}
{{- end }}
{{- if $svc.erasure }}
- name: LIFECYCLE_ERASURE_PEPPER
  valueFrom:
    secretKeyRef: {name: {{ required "tokens.existingSecret is required" $root.Values.tokens.existingSecret }}, key: {{ $root.Values.tokens.erasurePepperKey }}}
{{- end }}
{{- if eq $name "messaging" }}
- name: LIFECYCLE_MESSAGING_UNSUBSCRIBE_SECRET
  valueFrom:
    secretKeyRef: {name: {{ required "tokens.existingSecret is required" $root.Values.tokens.existingSecret }}, key: {{ $root.Values.tokens.messagingUnsubscribeSecretKey }}}
{{- end }}
{{- if and (eq $name "messaging") $sv.smtp.existingSecret }}
- name: LIFECYCLE_MESSAGING_SMTP_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $sv.smtp.existingSecret }}, key: {{ $sv.smtp.passwordKey }}}
{{- end }}
{{- end }}

{{/* The pod-level security context: the image's non-root user. */}}
{{- define "lifecycle.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile: {type: RuntimeDefault}
{{- end }}

{{- define "lifecycle.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities: {drop: [ALL]}
{{- end }}

{{- define "lifecycle.podExtras" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.pod.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.pod.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
