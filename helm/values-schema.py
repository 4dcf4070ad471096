#!/usr/bin/env python3
"""Writes helm/orderflow/values.schema.json, the chart's values schema.

Run it after changing the chart's values: `python3 helm/values-schema.py`.
tools/scripts/chart-tests.sh fails when the committed schema differs from what
this prints (`--check`).

Why generate it: the schema must keep every consumer's replicaCount,
autoscaling.maxReplicas and keda.maxReplicas at or below kafka.partitions, and
JSON Schema (draft-07, what Helm validates with) compares a value with
constants, never with another value. So the cap is written out as one rule per
partition count:

    if kafka.partitions == k  then  every consumer's replica bounds <= k

for k = 1 .. MAX_REPLICAS - 1, plus `maximum: MAX_REPLICAS` on the replica
bounds themselves. For partitions p < MAX_REPLICAS the rule k = p applies, so a
bound above p fails (with one error naming the value and p); for
p >= MAX_REPLICAS the plain maximum already keeps the bounds <= p. Together: replicas <= partitions for every partition count.
Partitions themselves are unbounded. MAX_REPLICAS is the documented hard cap on
replicas of one consumer (100), not a guess at the partition count.
"""

import json
import sys
from pathlib import Path

MAX_REPLICAS = 100
CONSUMERS = ["order", "inventory", "payment", "shipping", "notification"]
TOPICS = ["orders", "inventory", "payments", "shipments", "notifications"]
SCHEMA_PATH = Path(__file__).resolve().parent / "orderflow" / "values.schema.json"


def obj(properties, required=None, additional=False, **extra):
    schema = {"type": "object", "properties": properties, "additionalProperties": additional}
    if required is not None:
        schema["required"] = required
    schema.update(extra)
    return schema


def integer(minimum=None, maximum=None, description=None):
    schema = {"type": "integer"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    if description:
        schema["description"] = description
    return schema


STRING = {"type": "string"}
BOOLEAN = {"type": "boolean"}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
ANY_OBJECT = {"type": "object"}
OBJECT_LIST = {"type": "array", "items": {"type": "object"}}
QUANTITY = {"type": ["string", "number"]}
RESOURCES = obj(
    {
        "requests": {"type": "object", "additionalProperties": QUANTITY},
        "limits": {"type": "object", "additionalProperties": QUANTITY},
    }
)
ENV = {
    "type": "object",
    "description": "Extra environment variables of the component (name: value).",
    "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
    "additionalProperties": {"type": ["string", "number", "boolean"]},
}
PDB = obj(
    {
        "enabled": BOOLEAN,
        "maxUnavailable": {
            "oneOf": [integer(minimum=1), {"type": "string", "pattern": "^[0-9]+%$"}]
        },
    },
    required=["enabled", "maxUnavailable"],
)
REPLICA_BOUND = integer(
    minimum=1,
    maximum=MAX_REPLICAS,
    description=f"At most kafka.partitions (and at most {MAX_REPLICAS}) for a consumer.",
)
# null: the chart does not own the count (README "Replicas: who owns the count").
REPLICA_COUNT = {
    **REPLICA_BOUND,
    "type": ["integer", "null"],
    "description": "Set: the chart owns the count. null: kubectl does (replicaCountOnInstall first, then the live count is kept).",
}


def hpa(replica_bound):
    return obj(
        {
            "enabled": BOOLEAN,
            "minReplicas": integer(minimum=1),
            "maxReplicas": replica_bound,
            "targetCPUUtilizationPercentage": integer(minimum=1, maximum=100),
        },
        required=["enabled", "minReplicas", "maxReplicas", "targetCPUUtilizationPercentage"],
    )


KEDA = obj(
    {
        "enabled": BOOLEAN,
        "minReplicas": integer(minimum=1),
        "maxReplicas": REPLICA_BOUND,
        "lagThreshold": integer(minimum=1),
        "activationLagThreshold": integer(minimum=0),
        "pollingInterval": integer(minimum=1),
        "cooldownPeriod": integer(minimum=0),
        "topics": {
            "type": "array",
            "items": {"enum": TOPICS},
            "minItems": 1,
            "uniqueItems": True,
        },
    },
    required=[
        "enabled",
        "minReplicas",
        "maxReplicas",
        "lagThreshold",
        "activationLagThreshold",
        "pollingInterval",
        "cooldownPeriod",
        "topics",
    ],
)

# KEDA creates its own HPA: a component may use one autoscaler, not both
# (written as if/then so the error points at keda.enabled).
NOT_BOTH_AUTOSCALERS = {
    "if": {
        "required": ["autoscaling"],
        "properties": {"autoscaling": {"required": ["enabled"], "properties": {"enabled": {"const": True}}}},
    },
    "then": {"properties": {"keda": {"properties": {"enabled": {"const": False}}}}},
}


def consumer(name, extra_properties=None):
    properties = {
        "replicaCount": REPLICA_COUNT,
        "resources": RESOURCES,
        "autoscaling": hpa(REPLICA_BOUND),
        "keda": KEDA,
        "pdb": PDB,
        "env": ENV,
    }
    properties.update(extra_properties or {})
    return obj(
        properties,
        required=["resources", "autoscaling", "keda", "pdb"],
        description=f"The {name} service (consumer group orderflow-{name}).",
        **NOT_BOTH_AUTOSCALERS,
    )


EGRESS = obj(
    {
        "ports": {"type": "array", "items": integer(minimum=1, maximum=65535), "minItems": 1},
        "to": OBJECT_LIST,
    },
    required=["ports"],
)


def partition_cap(k):
    """if kafka.partitions == k then every consumer's replica bounds <= k."""
    cap = {"maximum": k}
    return {
        "if": {
            "required": ["kafka"],
            "properties": {
                "kafka": {"required": ["partitions"], "properties": {"partitions": {"minimum": k, "maximum": k}}}
            },
        },
        "then": {
            "properties": {"replicaCountOnInstall": cap},
            "patternProperties": {
                "^(" + "|".join(CONSUMERS) + ")$": {
                    "properties": {
                        "replicaCount": cap,
                        "autoscaling": {"properties": {"maxReplicas": cap}},
                        "keda": {"properties": {"maxReplicas": cap}},
                    }
                }
            }
        },
    }


def schema():
    probe = obj(
        {
            "periodSeconds": integer(minimum=1),
            "timeoutSeconds": integer(minimum=1),
            "failureThreshold": integer(minimum=1),
        },
        required=["periodSeconds", "timeoutSeconds", "failureThreshold"],
    )
    properties = {
        "global": ANY_OBJECT,
        "fullnameOverride": {"type": "string", "maxLength": 40},
        "image": obj(
            {
                "registry": {"type": "string", "minLength": 1},
                "tag": STRING,
                "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                "pullSecrets": OBJECT_LIST,
            },
            required=["registry", "tag", "pullPolicy"],
        ),
        "kafka": obj(
            {
                "bootstrapServers": {"type": "string", "minLength": 1},
                "partitions": integer(
                    minimum=1,
                    description="Partitions per topic; caps replicaCount and maxReplicas of every consumer.",
                ),
                "replicationFactor": integer(minimum=1),
                "minInsyncReplicas": {
                    "type": ["integer", "null"],
                    "minimum": 1,
                    "description": "Replicas that must have a write before it is acknowledged; null: 2 when replicationFactor is 3 or more, else 1.",
                },
                "properties": {
                    "type": "object",
                    "description": "Extra librdkafka properties (non-secret).",
                    "additionalProperties": {"type": ["string", "number", "boolean"]},
                },
                "sasl": obj(
                    {
                        "enabled": BOOLEAN,
                        "mechanism": {"enum": ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]},
                        "existingSecret": STRING,
                        "usernameKey": {"type": "string", "minLength": 1},
                        "passwordKey": {"type": "string", "minLength": 1},
                        "username": {"type": "string", "pattern": "^[^,]*$"},
                        "password": {"type": "string", "pattern": "^[^,]*$"},
                        "perComponent": obj(
                            {
                                "enabled": BOOLEAN,
                                "usernamePrefix": {"type": "string", "pattern": "^[a-z0-9.-]*$"},
                            },
                            required=["enabled", "usernamePrefix"],
                        ),
                    },
                    required=["enabled", "mechanism", "perComponent"],
                ),
                "tls": obj(
                    {"enabled": BOOLEAN, "caSecret": STRING, "caKey": {"type": "string", "minLength": 1}},
                    required=["enabled"],
                ),
            },
            required=["bootstrapServers", "partitions", "replicationFactor"],
        ),
        "schemaRegistry": obj(
            {
                "url": {"type": "string", "pattern": "^https?://"},
                "auth": obj(
                    {
                        "type": {"enum": ["basic", "bearer"]},
                        "existingSecret": STRING,
                        "key": {"type": "string", "minLength": 1},
                    },
                    required=["type", "existingSecret", "key"],
                ),
            },
            required=["url", "auth"],
        ),
        "auth": obj(
            {
                "issuer": {"type": "string", "minLength": 1},
                "jwksUrl": {"type": "string", "pattern": "^https?://.+"},
                "audience": {"type": "string", "minLength": 1},
                "operatorRole": {"type": "string", "minLength": 1},
            },
            required=["issuer", "jwksUrl", "audience", "operatorRole"],
        ),
        "database": obj(
            {
                "existingSecret": STRING,
                "urls": obj(
                    {name: {"type": "string", "pattern": "^(postgres(ql)?://.*)?$"} for name in CONSUMERS}
                ),
                "maxConnections": integer(minimum=1),
            },
            required=["maxConnections"],
        ),
        "tracing": obj(
            {
                "enabled": BOOLEAN,
                "otlpEndpoint": {"type": "string", "pattern": "^(https?://.+)?$"},
                # The binaries' exporter speaks OTLP over HTTP with protobuf only.
                "protocol": {"enum": ["http/protobuf"]},
                "sampler": {
                    "enum": [
                        "always_on",
                        "always_off",
                        "traceidratio",
                        "parentbased_always_on",
                        "parentbased_always_off",
                        "parentbased_traceidratio",
                    ]
                },
                "samplerArg": STRING,
                "jaegerUiUrl": STRING,
            },
            required=["enabled"],
            **{
                "if": {"properties": {"enabled": {"const": True}}},
                "then": {"properties": {"otlpEndpoint": {"minLength": 1}}, "required": ["otlpEndpoint"]},
            },
        ),
        "logs": obj(
            {"level": {"type": "string", "minLength": 1}, "format": {"enum": ["json", "text"]}},
            required=["level", "format"],
        ),
        "serviceAccount": obj(
            {"create": BOOLEAN, "name": STRING, "annotations": STRING_MAP}, required=["create"]
        ),
        "podAnnotations": STRING_MAP,
        "podLabels": STRING_MAP,
        "nodeSelector": STRING_MAP,
        "tolerations": OBJECT_LIST,
        "affinity": ANY_OBJECT,
        "priorityClassName": STRING,
        "topologySpread": obj({"enabled": BOOLEAN}),
        "terminationGracePeriodSeconds": integer(
            minimum=30, description="Time to drain, commit offsets and flush the outbox on SIGTERM."
        ),
        "preStopSleepSeconds": integer(minimum=0, maximum=20),
        "probes": obj(
            {"liveness": probe, "readiness": probe, "startup": probe},
            required=["liveness", "readiness", "startup"],
        ),
        "gateway": obj(
            {
                "replicaCount": {"type": ["integer", "null"], "minimum": 1},
                "upstreamTimeoutMs": integer(minimum=1),
                "deadLetters": obj({"enabled": BOOLEAN}, required=["enabled"]),
                "console": obj(
                    {
                        "jaegerUrl": {"type": "string", "pattern": "^(https?://.+)?$"},
                        "jaegerQueryUrl": {"type": "string", "pattern": "^(https?://.+)?$"},
                    },
                    required=["jaegerUrl", "jaegerQueryUrl"],
                ),
                "limits": obj(
                    {
                        "ordersPerSecond": {"type": "number", "exclusiveMinimum": 0},
                        "ordersBurst": integer(minimum=1),
                        "maxRequestsInFlight": integer(minimum=1),
                        "maxRequestsInFlightPerCaller": integer(minimum=1),
                        "maxStreamsPerCaller": integer(minimum=1),
                        "maxStreams": integer(minimum=1),
                        "headerReadTimeoutMs": integer(minimum=1),
                        "requestTimeoutMs": integer(minimum=1),
                    },
                    required=["ordersPerSecond", "ordersBurst", "maxRequestsInFlight", "maxRequestsInFlightPerCaller", "maxStreamsPerCaller", "maxStreams", "headerReadTimeoutMs", "requestTimeoutMs"],
                ),
                "service": obj(
                    {
                        "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                        "port": integer(minimum=1, maximum=65535),
                        "annotations": STRING_MAP,
                    },
                    required=["type", "port"],
                ),
                "ingress": obj(
                    {
                        "enabled": BOOLEAN,
                        "className": STRING,
                        "publicUrl": {"type": "string", "pattern": "^(https?://.+)?$"},
                        "annotations": STRING_MAP,
                        "hosts": {
                            "type": "array",
                            "minItems": 1,
                            "items": obj(
                                {
                                    "host": STRING,
                                    "paths": {
                                        "type": "array",
                                        "minItems": 1,
                                        "items": obj(
                                            {
                                                "path": {"type": "string", "pattern": "^/"},
                                                "pathType": {"enum": ["Prefix", "Exact", "ImplementationSpecific"]},
                                            },
                                            required=["path", "pathType"],
                                        ),
                                    },
                                },
                                required=["paths"],
                            ),
                        },
                        "tls": OBJECT_LIST,
                    },
                    required=["enabled", "hosts"],
                ),
                "resources": RESOURCES,
                "autoscaling": hpa(integer(minimum=1)),
                "pdb": PDB,
                "env": ENV,
            },
            required=["limits", "service", "ingress", "resources", "autoscaling", "pdb"],
        ),
        "order": consumer("order"),
        "inventory": consumer("inventory"),
        "payment": consumer(
            "payment",
            {
                "sandbox": obj(
                    {
                        "latencyMs": integer(minimum=0),
                        "failureRate": {"type": "number", "minimum": 0, "maximum": 1},
                        "api": {"type": "boolean"},
                    },
                    required=["latencyMs", "failureRate", "api"],
                ),
                "providerTimeoutMs": integer(minimum=1),
            },
        ),
        "shipping": consumer(
            "shipping",
            {
                "carrier": {"type": "string", "minLength": 1},
                "unservedCountries": {
                    "type": "array",
                    "items": {"type": "string", "pattern": "^[A-Z]{2}$"},
                    "uniqueItems": True,
                },
            },
        ),
        "notification": consumer(
            "notification",
            {
                "channel": {"enum": ["log", "webhook", "smtp"]},
                "webhookUrl": {"type": "string", "pattern": "^(https?://.+)?$"},
                "channelTimeoutMs": integer(minimum=1),
                "smtp": obj(
                    {
                        "host": {"type": "string"},
                        "port": integer(minimum=1, maximum=65535),
                        "tls": {"enum": ["starttls", "tls", "none"]},
                        "from": {"type": "string"},
                        "username": {"type": "string"},
                        "passwordSecret": obj(
                            {"name": {"type": "string"}, "key": {"type": "string", "minLength": 1}},
                            required=["name", "key"],
                        ),
                    },
                    required=["host", "port", "tls", "from"],
                ),
            },
        ),
        "replicaCountOnInstall": {
            **REPLICA_BOUND,
            "description": "Replicas of a component whose replicaCount is null, at install; upgrades keep the live count.",
        },
        "hooks": obj(
            {
                "topics": obj({"enabled": BOOLEAN}, required=["enabled"]),
                "schemas": obj({"enabled": BOOLEAN}, required=["enabled"]),
                "backoffLimit": integer(minimum=0),
                "activeDeadlineSeconds": integer(minimum=30),
                "ttlSecondsAfterFinished": integer(
                    minimum=0,
                    description="A finished hook Job (a failed one: the successful are deleted) is removed this long after it ended.",
                ),
                "resources": RESOURCES,
            },
            required=["topics", "schemas"],
        ),
        "metrics": obj(
            {
                "serviceMonitor": obj(
                    {
                        "enabled": BOOLEAN,
                        "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                        "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                        "labels": STRING_MAP,
                    },
                    required=["enabled"],
                ),
                "prometheusRule": obj({"enabled": BOOLEAN, "labels": STRING_MAP}, required=["enabled"]),
            }
        ),
        "networkPolicy": obj(
            {
                "enabled": BOOLEAN,
                "gatewayFrom": OBJECT_LIST,
                "prometheus": {
                    "type": ["object", "null"],
                    "properties": {
                        "namespace": {"type": "string", "minLength": 1},
                        "podLabels": {
                            "type": "object",
                            "minProperties": 1,
                            "additionalProperties": {"type": "string"},
                        },
                    },
                    "additionalProperties": False,
                    "required": ["namespace", "podLabels"],
                },
                "extraIngressFrom": OBJECT_LIST,
                "egress": obj(
                    {name: EGRESS for name in ["dns", "kafka", "postgres", "schemaRegistry", "otlp", "jaegerQuery", "webhook", "smtp", "oidc"]},
                    required=["dns", "kafka", "postgres", "schemaRegistry", "otlp", "jaegerQuery", "webhook", "smtp", "oidc"],
                ),
            },
            required=["enabled"],
        ),
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://orderflow.dev/helm/orderflow/values.schema.json",
        "title": "orderflow chart values",
        "$comment": "Generated by helm/values-schema.py; edit that, not this file.",
        "type": "object",
        "additionalProperties": False,
        "required": ["image", "kafka", "schemaRegistry", "auth", "database", "gateway"] + CONSUMERS,
        "properties": properties,
        "allOf": "PARTITION_CAPS",
    }


def render():
    text = json.dumps(schema(), indent=2)
    # One rule per line keeps the 99 partition-cap rules readable in a diff.
    caps = ",\n".join("    " + json.dumps(partition_cap(k), separators=(", ", ": ")) for k in range(1, MAX_REPLICAS))
    return text.replace('"PARTITION_CAPS"', "[\n" + caps + "\n  ]") + "\n"


def main():
    text = render()
    json.loads(text)  # still valid JSON
    if "--check" in sys.argv[1:]:
        if SCHEMA_PATH.read_text() != text:
            print(f"{SCHEMA_PATH} is out of date: run python3 helm/values-schema.py", file=sys.stderr)
            return 1
        return 0
    SCHEMA_PATH.write_text(text)
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
