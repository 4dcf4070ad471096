{{/*
Names. Every resource is "<release>-<component>" so the docs' commands
(`kubectl scale deploy/<release>-inventory`) hold for any release name.
*/}}
{{- define "orderflow.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end }}

{{/* The five saga services, in saga order. The gateway is not a consumer. */}}
{{- define "orderflow.consumerNames" -}}
order inventory payment shipping notification
{{- end }}

{{- define "orderflow.consumers" -}}
{{- splitList " " (include "orderflow.consumerNames" .) | toJson -}}
{{- end }}

{{/* The services the gateway calls (payment: the operator's payment view). */}}
{{- define "orderflow.gatewayUpstreams" -}}
{{- list "order" "inventory" "payment" "notification" | toJson -}}
{{- end }}

{{- define "orderflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{- define "orderflow.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end }}

{{/* The labels every pod of the release has: the default-deny policy selects them. */}}
{{- define "orderflow.releaseSelectorLabels" -}}
app.kubernetes.io/name: orderflow
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* args: dict "root" $ "component" name */}}
{{- define "orderflow.selectorLabels" -}}
{{ include "orderflow.releaseSelectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* args: dict "root" $ "component" name */}}
{{- define "orderflow.labels" -}}
helm.sh/chart: {{ include "orderflow.chart" .root }}
{{ include "orderflow.selectorLabels" . }}
app.kubernetes.io/part-of: orderflow
app.kubernetes.io/version: {{ include "orderflow.tag" .root | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/* The image of a binary. args: dict "root" $ "binary" "orderflow-order" */}}
{{- define "orderflow.image" -}}
{{- printf "%s/%s:%s" (trimSuffix "/" .root.Values.image.registry) .binary (include "orderflow.tag" .root) -}}
{{- end }}

{{- define "orderflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "orderflow.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end }}

{{- define "orderflow.databaseSecretName" -}}
{{- default (printf "%s-database" (include "orderflow.fullname" .)) .Values.database.existingSecret -}}
{{- end }}

{{/*
The Secret with the Kafka SASL credentials. The hook Jobs run before the
release's own resources exist, so when the chart creates the Secret it also
creates a hook-scoped copy for them. args: dict "root" $ "hook" bool
*/}}
{{- define "orderflow.kafkaSecretName" -}}
{{- $k := .root.Values.kafka.sasl -}}
{{- if $k.existingSecret -}}
{{- $k.existingSecret -}}
{{- else if .hook -}}
{{- printf "%s-kafka-hook" (include "orderflow.fullname" .root) -}}
{{- else -}}
{{- printf "%s-kafka" (include "orderflow.fullname" .root) -}}
{{- end -}}
{{- end }}

{{- define "orderflow.kafkaCaDir" -}}/etc/orderflow/kafka-ca{{- end }}

{{/*
ORDERFLOW_KAFKA_PROPERTIES: security protocol, SASL and TLS settings, then the
user's extra properties (which win, being last). The SASL credentials are
$(VAR) references that Kubernetes expands from the Secret-backed variables
defined just before it, so no secret is ever written into a manifest.
*/}}
{{- define "orderflow.kafkaProperties" -}}
{{- $k := .Values.kafka -}}
{{- $props := list -}}
{{- if and $k.sasl.enabled $k.tls.enabled -}}
{{- $props = append $props "security.protocol=SASL_SSL" -}}
{{- else if $k.sasl.enabled -}}
{{- $props = append $props "security.protocol=SASL_PLAINTEXT" -}}
{{- else if $k.tls.enabled -}}
{{- $props = append $props "security.protocol=SSL" -}}
{{- end -}}
{{- if $k.sasl.enabled -}}
{{- $props = append $props (printf "sasl.mechanism=%s" $k.sasl.mechanism) -}}
{{- $props = append $props "sasl.username=$(KAFKA_SASL_USERNAME)" -}}
{{- $props = append $props "sasl.password=$(KAFKA_SASL_PASSWORD)" -}}
{{- end -}}
{{- if and $k.tls.enabled $k.tls.caSecret -}}
{{- $props = append $props (printf "ssl.ca.location=%s/%s" (include "orderflow.kafkaCaDir" .) $k.tls.caKey) -}}
{{- end -}}
{{- range $key := keys $k.properties | sortAlpha -}}
{{- $props = append $props (printf "%s=%v" $key (index $k.properties $key)) -}}
{{- end -}}
{{- join "," $props -}}
{{- end }}

{{/*
Who a component is to Kafka. With kafka.sasl.perComponent, component X is
"<usernamePrefix>X" (the topics hook Job is "<usernamePrefix>ops"), its password
in the Secret of that name, as Strimzi's User Operator writes it for a
KafkaUser; otherwise every component shares the credentials of kafka.sasl.
args: dict "root" $ "hook" bool "component" name
*/}}
{{- define "orderflow.kafkaPrincipal" -}}
{{- $k := .root.Values.kafka.sasl -}}
{{- if $k.perComponent.enabled -}}
{{- $name := printf "%s%s" $k.perComponent.usernamePrefix (ternary "ops" .component .hook) -}}
{{- dict "secret" $name "username" $name "passwordKey" $k.passwordKey | toJson -}}
{{- else -}}
{{- dict "secret" (include "orderflow.kafkaSecretName" .) "usernameKey" $k.usernameKey "passwordKey" $k.passwordKey | toJson -}}
{{- end -}}
{{- end }}

{{/* Kafka env entries (a YAML list). args: dict "root" $ "hook" bool "component" name */}}
{{- define "orderflow.kafkaEnv" -}}
{{- $k := .root.Values.kafka -}}
{{- if $k.sasl.enabled }}
{{- $p := include "orderflow.kafkaPrincipal" . | fromJson }}
- name: KAFKA_SASL_USERNAME
  {{- if $p.username }}
  value: {{ $p.username | quote }}
  {{- else }}
  valueFrom:
    secretKeyRef:
      name: {{ $p.secret }}
      key: {{ $p.usernameKey }}
  {{- end }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $p.secret }}
      key: {{ $p.passwordKey }}
{{- end }}
- name: ORDERFLOW_KAFKA_BOOTSTRAP_SERVERS
  value: {{ $k.bootstrapServers | quote }}
- name: ORDERFLOW_KAFKA_PARTITIONS
  value: {{ $k.partitions | int64 | toString | quote }}
- name: ORDERFLOW_KAFKA_PROPERTIES
  value: {{ include "orderflow.kafkaProperties" .root | quote }}
{{- end }}

{{/*
The schema registry's URL and credentials (a YAML list): basic auth
(`key:secret`) or a bearer token from a Secret, never from the values.
*/}}
{{- define "orderflow.registryEnv" -}}
{{- $r := .Values.schemaRegistry -}}
- name: ORDERFLOW_SCHEMA_REGISTRY_URL
  value: {{ $r.url | quote }}
{{- with $r.auth.existingSecret }}
- name: {{ ternary "ORDERFLOW_SCHEMA_REGISTRY_BEARER_TOKEN" "ORDERFLOW_SCHEMA_REGISTRY_BASIC_AUTH" (eq $r.auth.type "bearer") }}
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $r.auth.key }}
{{- end }}
{{- end }}

{{/* Pod identity for logs and trace resources (a YAML list). args: dict "root" $ "component" name */}}
{{- define "orderflow.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- if .root.Values.tracing.enabled }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: "service.instance.id=$(POD_NAME),k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE),service.version={{ include "orderflow.tag" .root }}"
{{- end }}
{{- end }}

{{/* Settings every component shares (ConfigMap data). args: dict "root" $ "component" name */}}
{{- define "orderflow.commonConfig" -}}
{{- $v := .root.Values -}}
ORDERFLOW_HTTP_ADDR: "0.0.0.0:8080"
ORDERFLOW_OPS_ADDR: "0.0.0.0:9090"
{{- /* Every API checks each call's token itself (the gateway forwards the caller's). */}}
ORDERFLOW_AUTH_JWKS_URL: {{ $v.auth.jwksUrl | quote }}
ORDERFLOW_AUTH_ISSUER: {{ $v.auth.issuer | quote }}
ORDERFLOW_AUTH_AUDIENCE: {{ $v.auth.audience | quote }}
ORDERFLOW_AUTH_OPERATOR_ROLE: {{ $v.auth.operatorRole | quote }}
RUST_LOG: {{ $v.logs.level | quote }}
ORDERFLOW_LOG_FORMAT: {{ $v.logs.format | quote }}
{{- if ne .component "gateway" }}
{{- /* A stop ends before the kubelet kills the pod: its grace period less the preStop sleep, less 5 s. */}}
ORDERFLOW_SHUTDOWN_BUDGET_MS: {{ mul (max 1 (sub (sub (int $v.terminationGracePeriodSeconds) (int $v.preStopSleepSeconds)) 5)) 1000 | quote }}
{{- end }}
{{- if $v.tracing.enabled }}
OTEL_SERVICE_NAME: {{ printf "orderflow-%s" .component | quote }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ $v.tracing.otlpEndpoint | quote }}
OTEL_EXPORTER_OTLP_PROTOCOL: {{ $v.tracing.protocol | quote }}
OTEL_TRACES_SAMPLER: {{ $v.tracing.sampler | quote }}
OTEL_TRACES_SAMPLER_ARG: {{ $v.tracing.samplerArg | quote }}
{{- else }}
OTEL_TRACES_EXPORTER: "none"
{{- end }}
{{- end }}

{{/* Restricted Pod Security Standard, pod level. */}}
{{- define "orderflow.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Restricted Pod Security Standard, container level. */}}
{{- define "orderflow.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Volumes every pod has (a YAML list). */}}
{{- define "orderflow.volumes" -}}
# The root filesystem is read-only; /tmp is the only writable place.
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret }}
    items:
      - key: {{ .Values.kafka.tls.caKey }}
        path: {{ .Values.kafka.tls.caKey }}
{{- end }}
{{- end }}

{{- define "orderflow.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: {{ include "orderflow.kafkaCaDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
Checks values.schema.json cannot express (it compares values with constants,
not with each other, except through the partition cap it encodes). Included
by NOTES.txt and every Deployment so `helm template` fails too.
*/}}
{{- define "orderflow.validate" -}}
{{- $v := .Values -}}
{{- $partitions := int $v.kafka.partitions -}}
{{- range $name := include "orderflow.consumers" . | fromJsonArray -}}
{{- $svc := index $v $name -}}
{{- if and $svc.autoscaling.enabled $svc.keda.enabled -}}
{{- fail (printf "%s: autoscaling.enabled and keda.enabled are both true; KEDA creates its own HPA, so enable one of them" $name) -}}
{{- end -}}
{{- range $kind := list "autoscaling" "keda" -}}
{{- $a := index $svc $kind -}}
{{- if gt (int $a.maxReplicas) $partitions -}}
{{- fail (printf "%s.%s.maxReplicas (%d) exceeds kafka.partitions (%d): replicas beyond the partition count sit idle" $name $kind (int $a.maxReplicas) $partitions) -}}
{{- end -}}
{{- if gt (int $a.minReplicas) (int $a.maxReplicas) -}}
{{- fail (printf "%s.%s.minReplicas (%d) is above maxReplicas (%d)" $name $kind (int $a.minReplicas) (int $a.maxReplicas)) -}}
{{- end -}}
{{- end -}}
{{- $count := int (default $v.replicaCountOnInstall $svc.replicaCount) -}}
{{- if gt $count $partitions -}}
{{- fail (printf "%s.replicaCount (%d) exceeds kafka.partitions (%d): replicas beyond the partition count sit idle" $name $count $partitions) -}}
{{- end -}}
{{- end -}}
{{- if and $v.gateway.autoscaling.enabled (gt (int $v.gateway.autoscaling.minReplicas) (int $v.gateway.autoscaling.maxReplicas)) -}}
{{- fail "gateway.autoscaling.minReplicas is above maxReplicas" -}}
{{- end -}}
{{- if and (not $v.database.existingSecret) (not (and $v.database.urls.order $v.database.urls.inventory $v.database.urls.payment $v.database.urls.shipping $v.database.urls.notification)) -}}
{{- fail "database: set database.existingSecret, or all five database.urls (order, inventory, payment, shipping, notification)" -}}
{{- end -}}
{{- if and $v.kafka.sasl.enabled (not $v.kafka.sasl.perComponent.enabled) (not $v.kafka.sasl.existingSecret) (not (and $v.kafka.sasl.username $v.kafka.sasl.password)) -}}
{{- fail "kafka.sasl: set kafka.sasl.existingSecret, or kafka.sasl.username and kafka.sasl.password" -}}
{{- end -}}
{{- if and (eq $v.notification.channel "webhook") (not $v.notification.webhookUrl) -}}
{{- fail "notification.channel is webhook: set notification.webhookUrl" -}}
{{- end -}}
{{- if or (not $v.auth.issuer) (not $v.auth.jwksUrl) -}}
{{- fail "auth: set auth.issuer and auth.jwksUrl to your OIDC provider's issuer and jwks_uri (README \"Security\")" -}}
{{- end -}}
{{- if $v.gateway.ingress.enabled -}}
{{- range $host := $v.gateway.ingress.hosts -}}
{{- range $path := $host.paths -}}
{{- $p := trimSuffix "/" $path.path -}}
{{- $routesMetrics := or (eq $p "/metrics") (and (ne $path.pathType "Exact") (or (eq $p "") (hasPrefix "/metrics" $p))) -}}
{{- if $routesMetrics -}}
{{- fail (printf "gateway.ingress: path %s (%s) would serve /metrics publicly: route /v1 and /openapi.json instead" $path.path $path.pathType) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/* A NetworkPolicy egress rule from networkPolicy.egress.<name>. args: dict "rule" {ports, to} "udp" bool */}}
{{- define "orderflow.egressRule" -}}
- ports:
    {{- range .rule.ports }}
    - port: {{ . }}
      protocol: TCP
    {{- if $.udp }}
    - port: {{ . }}
      protocol: UDP
    {{- end }}
    {{- end }}
  {{- with .rule.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* A component's NetworkPolicy ingress rules (a YAML list, maybe empty). args: dict "root" $ "component" name */}}
{{- define "orderflow.ingressRules" -}}
{{- $root := .root }}
{{- $component := .component }}
{{- $np := $root.Values.networkPolicy }}
{{- $upstreams := include "orderflow.gatewayUpstreams" $root | fromJsonArray }}
{{- if eq $component "gateway" }}
# The public API: from the ingress controller and in-cluster clients.
- ports:
    - port: http
      protocol: TCP
  {{- with $np.gatewayFrom }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- if has $component $upstreams }}
- ports:
    - port: http
      protocol: TCP
  from:
    - podSelector:
        matchLabels:
          {{- include "orderflow.selectorLabels" (dict "root" $root "component" "gateway") | nindent 10 }}
{{- end }}
{{- with $np.prometheus }}
# Prometheus scrapes /metrics: the operations port only, from its namespace
# and pods alone.
- ports:
    - port: ops
      protocol: TCP
  from:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ .namespace | quote }}
      podSelector:
        matchLabels:
          {{- toYaml .podLabels | nindent 10 }}
{{- end }}
{{- with $np.extraIngressFrom }}
- ports:
    - port: http
      protocol: TCP
  from:
    {{- toYaml . | nindent 4 }}
{{- end }}
{{- end }}

{{- /*
A Deployment's replica count, when no autoscaler owns it: <component>.replicaCount
when set (the chart owns the count: every upgrade applies it); otherwise the live
Deployment's spec.replicas (kubectl owns it: a `kubectl scale` lasts across
upgrades), or replicaCountOnInstall when there is none yet. `helm template` and
client-side dry runs cannot look objects up and render replicaCountOnInstall.
*/}}
{{- define "orderflow.replicas" -}}
{{- $root := .root -}}
{{- $svc := index $root.Values .component -}}
{{- if not (kindIs "invalid" $svc.replicaCount) -}}
{{- $svc.replicaCount | int -}}
{{- else -}}
{{- $name := printf "%s-%s" (include "orderflow.fullname" $root) .component -}}
{{- $live := lookup "apps/v1" "Deployment" $root.Release.Namespace $name -}}
{{- if and $live $live.spec (hasKey $live.spec "replicas") -}}
{{- $live.spec.replicas | int -}}
{{- else -}}
{{- $root.Values.replicaCountOnInstall | int -}}
{{- end -}}
{{- end -}}
{{- end -}}
