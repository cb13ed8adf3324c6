"""pyswarm's own JSON schema of the compose keys a stack supports.

Written for what pyswarm deploys (not a copy of compose-spec's schema): every object
refuses keys it does not know, except `x-` extensions and the keys that compose knows
but a swarm stack cannot honour, which each object lists under `x-ignored` (accepted,
then named in one warning line as docker's "Ignoring unsupported options: build").
`x-expect` gives the human words for a value that does not match.

Unions avoid oneOf (whose errors name no single cause): a list of types with keywords
that only apply to the matching type (`properties` only binds objects, `items` lists).
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
DURATION: Schema = {
    "type": "string",
    "pattern": r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$",
    "x-expect": "a duration such as 10s or 1m30s",
}
STRINGS: Schema = {"type": "array", "items": STRING}
STRING_OR_LIST: Schema = {"type": ["string", "array"], "items": STRING}
SCALAR = ["string", "number", "boolean", "null"]
# environment, labels, sysctls, extra_hosts: KEY=VALUE lines or a mapping
LIST_OR_DICT: Schema = {
    "type": ["object", "array"],
    "items": STRING,
    "additionalProperties": {"type": SCALAR},
}
STRING_MAP: Schema = {"type": "object", "additionalProperties": {"type": ["string", "number"]}}


def obj(properties: dict[str, Schema], ignored: tuple[str, ...] = (), **extra: Any) -> Schema:
    """An object with exactly these keys (plus x- extensions and the ignored ones)."""
    schema: Schema = {
        "type": "object",
        "properties": {**properties, **{key: {} for key in ignored}},
        "patternProperties": {"^x-": {}},
        "additionalProperties": False,
    }
    if ignored:
        schema["x-ignored"] = list(ignored)
    schema.update(extra)
    return schema


def nullable(schema: Schema) -> Schema:
    """`name:` with nothing after it means 'all defaults' for networks, volumes, ..."""
    return {**schema, "type": [schema["type"], "null"]}


def named_map(item: Schema) -> Schema:
    return {"type": "object", "additionalProperties": item}


EXTERNAL: Schema = {
    "type": ["boolean", "object"],
    "properties": {"name": STRING},
    "additionalProperties": False,
}

UPDATE_CONFIG = obj({
    "parallelism": INTEGER,
    "delay": DURATION,
    "failure_action": {"enum": ["continue", "rollback", "pause"]},
    "monitor": DURATION,
    "max_failure_ratio": NUMBER,
    "order": {"enum": ["start-first", "stop-first"]},
})  # fmt: skip

RESOURCES = obj(
    {"cpus": {"type": ["number", "string"]}, "memory": {"type": ["string", "integer"]},
     "pids": INTEGER,
     "generic_resources": {"type": "array", "items": obj({
         "discrete_resource_spec": obj({"kind": STRING, "value": INTEGER})})}},
    ignored=("devices",),
)  # fmt: skip

DEPLOY = obj(
    {
        "mode": {"enum": ["replicated", "global", "replicated-job", "global-job"]},
        "replicas": {**INTEGER, "minimum": 0},
        "endpoint_mode": {"enum": ["vip", "dnsrr"]},
        "labels": LIST_OR_DICT,
        "resources": obj({"limits": RESOURCES, "reservations": RESOURCES}),
        "placement": obj({
            "constraints": STRINGS,
            "preferences": {"type": "array", "items": obj({"spread": STRING})},
            "max_replicas_per_node": {**INTEGER, "minimum": 0},
        }),
        "update_config": UPDATE_CONFIG,
        "rollback_config": UPDATE_CONFIG,
        "restart_policy": obj({
            "condition": {"enum": ["none", "on-failure", "any"]},
            "delay": DURATION,
            "max_attempts": {**INTEGER, "minimum": 0},
            "window": DURATION,
        }),
    }
)  # fmt: skip

PORT = {
    **obj(
        {"target": {**INTEGER, "minimum": 1, "maximum": 65535},
         "published": {"type": ["integer", "string"]},
         "protocol": {"enum": ["tcp", "udp"]},
         "mode": {"enum": ["ingress", "host"]},
         "host_ip": STRING,
         "name": STRING},
        ignored=("app_protocol",),
        required=["target"],
    ),
    "type": ["string", "integer", "object"],
}  # fmt: skip

VOLUME_MOUNT = {
    **obj(
        {"type": {"enum": ["bind", "volume", "tmpfs"]},
         "source": STRING, "target": STRING, "read_only": BOOLEAN,
         "bind": obj({"propagation": STRING}, ignored=("create_host_path", "selinux")),
         "volume": obj({"nocopy": BOOLEAN}, ignored=("subpath",)),
         "tmpfs": obj({"size": {"type": ["integer", "string"]}, "mode": INTEGER})},
        ignored=("consistency",),
        required=["type", "target"],
    ),
    "type": ["string", "object"],
}  # fmt: skip

FILE_REFERENCE = {
    **obj({"source": STRING, "target": STRING, "uid": STRING, "gid": STRING, "mode": INTEGER},
          required=["source"]),
    "type": ["string", "object"],
}  # fmt: skip

SERVICE_NETWORK = obj(
    {"aliases": STRINGS},
    ignored=("ipv4_address", "ipv6_address", "link_local_ips", "priority", "driver_opts",
             "mac_address", "interface_name", "gw_priority"),
)  # fmt: skip

HEALTHCHECK = obj(
    {"test": STRING_OR_LIST, "interval": DURATION, "timeout": DURATION,
     "retries": {**INTEGER, "minimum": 0}, "start_period": DURATION, "disable": BOOLEAN},
    ignored=("start_interval",),
)  # fmt: skip

ULIMIT = {
    **obj({"soft": INTEGER, "hard": INTEGER}, required=["soft", "hard"]),
    "type": ["integer", "object"],
}

# Keys compose knows for a service that a swarm stack does not run (docker stack deploy
# ignores them too, or they describe one engine's local containers).
IGNORED_SERVICE_KEYS = (
    "build", "container_name", "links", "external_links", "cgroup_parent", "cgroup",
    "network_mode", "restart", "security_opt", "devices", "domainname", "ipc", "pid",
    "mac_address", "userns_mode", "shm_size", "privileged", "expose", "profiles",
    "platform", "pull_policy", "scale", "annotations", "attach", "blkio_config",
    "cpu_count", "cpu_percent", "cpu_shares", "cpu_period", "cpu_quota", "cpu_rt_runtime",
    "cpu_rt_period", "cpus", "cpuset", "credential_spec", "device_cgroup_rules", "develop",
    "extends", "isolation", "label_file", "mem_limit", "mem_reservation", "mem_swappiness",
    "memswap_limit", "oom_kill_disable", "oom_score_adj", "pids_limit", "post_start",
    "pre_stop", "runtime", "storage_opt", "uts", "volumes_from", "gpus", "use_api_socket",
    "models", "provider", "pull_refresh_after",
)  # fmt: skip

SERVICE = obj(
    {
        "image": STRING,
        "command": STRING_OR_LIST,
        "entrypoint": STRING_OR_LIST,
        "environment": LIST_OR_DICT,
        "env_file": {"type": ["string", "array"],
                     "items": {**obj({"path": STRING, "required": BOOLEAN}, required=["path"]),
                               "type": ["string", "object"]}},
        "ports": {"type": "array", "items": PORT},
        "networks": {"type": ["array", "object"], "items": STRING,
                     "additionalProperties": nullable(SERVICE_NETWORK)},
        "volumes": {"type": "array", "items": VOLUME_MOUNT},
        "tmpfs": STRING_OR_LIST,
        "secrets": {"type": "array", "items": FILE_REFERENCE},
        "configs": {"type": "array", "items": FILE_REFERENCE},
        "healthcheck": HEALTHCHECK,
        "hostname": STRING,
        "user": STRING,
        "working_dir": STRING,
        "labels": LIST_OR_DICT,
        "stop_grace_period": DURATION,
        "stop_signal": STRING,
        "cap_add": STRINGS,
        "cap_drop": STRINGS,
        "read_only": BOOLEAN,
        "init": BOOLEAN,
        "tty": BOOLEAN,
        "stdin_open": BOOLEAN,
        "group_add": {"type": "array", "items": {"type": ["string", "integer"]}},
        "sysctls": LIST_OR_DICT,
        "ulimits": {"type": "object", "additionalProperties": ULIMIT},
        "dns": STRING_OR_LIST,
        "dns_search": STRING_OR_LIST,
        "dns_opt": STRINGS,
        "extra_hosts": LIST_OR_DICT,
        "logging": obj({"driver": STRING, "options": {
            "type": ["object", "null"],
            "additionalProperties": {"type": ["string", "number", "null"]}}}),
        "deploy": DEPLOY,
        "depends_on": {
            "type": ["array", "object"], "items": STRING,
            "additionalProperties": obj(
                {"condition": {"enum": ["service_started", "service_healthy",
                                        "service_completed_successfully"]},
                 "required": BOOLEAN},
                ignored=("restart",)),
        },
    },
    ignored=IGNORED_SERVICE_KEYS,
)  # fmt: skip

NETWORK = obj(
    {"driver": STRING, "driver_opts": STRING_MAP, "attachable": BOOLEAN, "internal": BOOLEAN,
     "external": EXTERNAL, "name": STRING, "labels": LIST_OR_DICT,
     "ipam": obj({"driver": STRING,
                  "config": {"type": "array", "items": obj(
                      {"subnet": STRING, "gateway": STRING, "ip_range": STRING},
                      ignored=("aux_addresses",))},
                  "options": STRING_MAP})},
    ignored=("enable_ipv6", "enable_ipv4"),
)  # fmt: skip

VOLUME = obj({"driver": STRING, "driver_opts": STRING_MAP, "external": EXTERNAL,
              "name": STRING, "labels": LIST_OR_DICT})  # fmt: skip

FILE_OBJECT = obj({"file": STRING, "external": EXTERNAL, "name": STRING,
                   "labels": LIST_OR_DICT, "environment": STRING, "content": STRING},
                  ignored=("template_driver", "driver", "driver_opts"))  # fmt: skip

COMPOSE = obj(
    {
        "version": STRING,
        "name": STRING,
        "services": {"type": "object", "additionalProperties": SERVICE, "minProperties": 1,
                     "propertyNames": {"pattern": r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$",
                                       "x-expect": "a name of letters, digits, _ . -"}},
        "networks": named_map(nullable(NETWORK)),
        "volumes": named_map(nullable(VOLUME)),
        "secrets": named_map(FILE_OBJECT),
        "configs": named_map(FILE_OBJECT),
    },
    ignored=("include", "models"),
    required=["services"],
)  # fmt: skip
