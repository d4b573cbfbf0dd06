{{/* Names: <release>-headwater, or the release name when it already says headwater. */}}
{{- define "headwater.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "headwater.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: headwater
{{- end -}}

{{/* Selector labels of one component: call with (dict "root" $ "component" "gateway"). */}}
{{- define "headwater.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "headwater.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The topology YAML the release mounts. */}}
{{- define "headwater.topology" -}}
{{- if .Values.topology.content -}}
{{- .Values.topology.content -}}
{{- else -}}
{{- .Files.Get "files/topology.yaml" -}}
{{- end -}}
{{- end -}}

{{/*
What the chart refuses to render, each with the reason. Included by the topology ConfigMap, so
that `helm template`, `helm lint` and `helm install` all stop on it.
*/}}
{{- define "headwater.validate" -}}
{{- $partitions := int .Values.topology.capturePartitions -}}
{{- if lt $partitions 1 -}}
{{- fail "topology.capturePartitions must be at least 1" -}}
{{- end -}}
{{- $w := .Values.workers -}}
{{- if $w.autoscaling.enabled -}}
{{- if gt (int $w.autoscaling.maxReplicas) $partitions -}}
{{- fail (printf "workers.autoscaling.maxReplicas (%d) is more than the capture topic's %d partitions (topology.capturePartitions): a partition is read by one worker at a time, so the extra workers would read nothing. Lower maxReplicas, or raise the topic's partitions first (docs/deployment.md)" (int $w.autoscaling.maxReplicas) $partitions) -}}
{{- end -}}
{{- if gt (int $w.autoscaling.minReplicas) (int $w.autoscaling.maxReplicas) -}}
{{- fail "workers.autoscaling.minReplicas is more than workers.autoscaling.maxReplicas" -}}
{{- end -}}
{{- else if gt (int $w.replicas) $partitions -}}
{{- fail (printf "workers.replicas (%d) is more than the capture topic's %d partitions (topology.capturePartitions): the extra workers would read nothing" (int $w.replicas) $partitions) -}}
{{- end -}}
{{- $g := .Values.gateway -}}
{{- if and $g.autoscaling.enabled (gt (int $g.autoscaling.minReplicas) (int $g.autoscaling.maxReplicas)) -}}
{{- fail "gateway.autoscaling.minReplicas is more than gateway.autoscaling.maxReplicas" -}}
{{- end -}}
{{- if le (int $g.terminationGracePeriodSeconds) (int $g.preStopSleepSeconds) -}}
{{- fail "gateway.terminationGracePeriodSeconds must be longer than gateway.preStopSleepSeconds, or the gateway is killed before it finishes its requests" -}}
{{- end -}}
{{- if not .Values.connections.kafkaBootstrap -}}
{{- fail "connections.kafkaBootstrap is required: host:port[,host:port] of your Kafka cluster" -}}
{{- end -}}
{{- range $name := list "postgres" "redis" "clickhouse" -}}
{{- $ref := index $.Values.connections $name -}}
{{- if not (and $ref $ref.secretName $ref.secretKey) -}}
{{- fail (printf "connections.%s needs secretName and secretKey: the existing Secret holding its DSN/URL (never the value itself)" $name) -}}
{{- end -}}
{{- end -}}
{{- range $i, $e := .Values.secretEnv -}}
{{- if not (and $e.name $e.secretName $e.secretKey) -}}
{{- fail (printf "secretEnv[%d] needs name, secretName and secretKey" $i) -}}
{{- end -}}
{{- end -}}
{{- $topology := include "headwater.topology" . | fromYaml -}}
{{- if hasKey $topology "Error" -}}
{{- fail (printf "the topology is not YAML: %s" $topology.Error) -}}
{{- end -}}
{{- $capture := dig "capture" "topic" "events_raw" $topology -}}
{{- $declared := dig "topics" $capture "partitions" 4 $topology | int -}}
{{- if ne $declared $partitions -}}
{{- fail (printf "topology.capturePartitions is %d but the topology declares %d partitions for its capture topic %s: make them agree" $partitions $declared $capture) -}}
{{- end -}}
{{- $minRf := int .Values.topology.minReplicationFactor -}}
{{- range $topic, $spec := (get $topology "topics" | default dict) -}}
{{- $rf := dig "replication_factor" 1 ($spec | default dict) | int -}}
{{- if lt $rf $minRf -}}
{{- fail (printf "topic %s has replication_factor %d, less than topology.minReplicationFactor (%d): with min.insync.replicas 2 an acks=all write needs 3 copies to survive a broker down (set minReplicationFactor: 1 only for a one-broker test cluster)" $topic $rf $minRf) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The environment every Headwater container gets. */}}
{{- define "headwater.env" -}}
- name: HEADWATER_KAFKA_BOOTSTRAP
  value: {{ .Values.connections.kafkaBootstrap | quote }}
- name: HEADWATER_POSTGRES_DSN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.connections.postgres.secretName }}
      key: {{ .Values.connections.postgres.secretKey }}
- name: HEADWATER_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.connections.redis.secretName }}
      key: {{ .Values.connections.redis.secretKey }}
- name: HEADWATER_CLICKHOUSE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.connections.clickhouse.secretName }}
      key: {{ .Values.connections.clickhouse.secretKey }}
- name: HEADWATER_TOPOLOGY
  value: /etc/headwater/topology.yaml
- name: HEADWATER_STATE_DIR
  value: /var/lib/headwater
- name: HOME
  value: /tmp
{{- range .Values.secretEnv }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .secretKey }}
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* Component settings: call with (dict "env" .Values.gateway.env). */}}
{{- define "headwater.componentEnv" -}}
{{- range $name, $value := .env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{- define "headwater.volumeMounts" -}}
- name: topology
  mountPath: /etc/headwater
  readOnly: true
- name: state
  mountPath: /var/lib/headwater
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Pod volumes: call with (dict "root" $ "configMap" "<name>"). */}}
{{- define "headwater.volumes" -}}
- name: topology
  configMap:
    name: {{ .configMap }}
- name: state
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- end -}}

{{/* What every pod spec shares. */}}
{{- define "headwater.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .Values.serviceAccount.name }}
serviceAccountName: {{ .Values.serviceAccount.name }}
{{- end }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{- define "headwater.podAnnotations" -}}
checksum/topology: {{ include "headwater.topology" . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "headwater.scrapeAnnotations" -}}
{{- if .root.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}
