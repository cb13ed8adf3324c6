"""The metadata instructions: how each one changes the image config (pure functions).

Each takes the config's `config` object (docker's runtime config: Env, Cmd, ...),
changes it in place and returns the text docker records as the history entry's
`created_by` (`/bin/sh -c #(nop)  ENV A=b`), which is also the step's cache key.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

from pyswarm.common.healthcheck import healthcheck_document
from pyswarm.proto import types_pb2

NOP = "/bin/sh -c #(nop) "
DEFAULT_SHELL = ["/bin/sh", "-c"]


def env_map(config: dict[str, Any]) -> dict[str, str]:
    result = {}
    for item in config.get("Env") or []:
        key, _, value = str(item).partition("=")
        result[key] = value
    return result


def set_env(config: dict[str, Any], pairs: list[tuple[str, str]]) -> str:
    env = env_map(config)
    for key, value in pairs:
        env[key] = value
    config["Env"] = [f"{k}={v}" for k, v in env.items()]
    return NOP + " ENV " + " ".join(f"{k}={v}" for k, v in pairs)


def set_labels(config: dict[str, Any], pairs: list[tuple[str, str]]) -> str:
    labels = dict(config.get("Labels") or {})
    labels.update(pairs)
    config["Labels"] = labels
    return NOP + " LABEL " + " ".join(f"{k}={v}" for k, v in pairs)


def set_workdir(config: dict[str, Any], path: str) -> str:
    current = config.get("WorkingDir") or "/"
    config["WorkingDir"] = posixpath.normpath(posixpath.join(current, path))
    return NOP + f" WORKDIR {config['WorkingDir']}"


def set_user(config: dict[str, Any], user: str) -> str:
    config["User"] = user
    return NOP + f" USER {user}"


def add_exposed(config: dict[str, Any], ports: list[str]) -> str:
    exposed = dict(config.get("ExposedPorts") or {})
    exposed.update({port: {} for port in ports})
    config["ExposedPorts"] = exposed
    return NOP + " EXPOSE " + " ".join(ports)


def add_volumes(config: dict[str, Any], volumes: list[str]) -> str:
    existing = dict(config.get("Volumes") or {})
    existing.update({volume: {} for volume in volumes})
    config["Volumes"] = existing
    return NOP + " VOLUME " + json.dumps(volumes)


def set_stop_signal(config: dict[str, Any], signal: str) -> str:
    config["StopSignal"] = signal
    return NOP + f" STOPSIGNAL {signal}"


def command_form(config: dict[str, Any], exec_form: list[str] | None, text: str) -> list[str]:
    """The argv of CMD/ENTRYPOINT/RUN: the exec form, or the shell form via SHELL."""
    if exec_form is not None:
        return exec_form
    return [*(config.get("Shell") or DEFAULT_SHELL), text]


def set_cmd(config: dict[str, Any], argv: list[str]) -> str:
    config["Cmd"] = argv
    return NOP + " CMD " + json.dumps(argv)


def set_entrypoint(config: dict[str, Any], argv: list[str], *, cmd_set_in_stage: bool) -> str:
    config["Entrypoint"] = argv
    if not cmd_set_in_stage:
        config.pop("Cmd", None)  # docker: an inherited CMD does not outlive a new ENTRYPOINT
    return NOP + " ENTRYPOINT " + json.dumps(argv)


def set_shell(config: dict[str, Any], argv: list[str]) -> str:
    config["Shell"] = argv
    return NOP + " SHELL " + json.dumps(argv)


def set_healthcheck(config: dict[str, Any], check: types_pb2.HealthConfig) -> str:
    document = healthcheck_document(check)
    config["Healthcheck"] = document
    return NOP + " HEALTHCHECK " + json.dumps(document, sort_keys=True)


def run_created_by(argv: list[str], args: dict[str, str]) -> str:
    """docker's history text of a RUN: `|N K=V ... /bin/sh -c cmd` when build args apply."""
    command = " ".join(argv)
    if not args:
        return command
    pairs = " ".join(f"{k}={v}" for k, v in sorted(args.items()))
    return f"|{len(args)} {pairs} {command}"
