"""A cluster task's secrets and configs, from memory into the runtime's spec.

The container record keeps only the references (ids, names, targets) of its spec; the
bytes come from a `TaskFileSource` (in cluster mode, the executor's in-memory holder
fed by the session: agent/cluster/task_files.py) when the container starts, and go to
the supervisor inside the RuntimeSpec, which is never written anywhere. A container
whose files are not in memory does not start (`MissingTaskFiles`).
"""

from __future__ import annotations

import posixpath
from typing import Protocol

from pyswarm.common.errors import FailedPrecondition
from pyswarm.proto import runtime_pb2, types_pb2

SECRETS_DIR = "/run/secrets"
DEFAULT_MODE = 0o444


class TaskFileSource(Protocol):
    def secret_data(self, secret_id: str) -> bytes | None:
        """The bytes of secret `secret_id`, if this node holds them now."""
        ...

    def config_data(self, config_id: str) -> bytes | None:
        """The bytes of config `config_id`, if this node holds them now."""
        ...


class MissingTaskFiles(FailedPrecondition):
    """The node does not hold (yet, or any more) a secret or config the container uses."""


def has_task_files(spec: types_pb2.ContainerSpec) -> bool:
    return bool(spec.secrets or spec.configs)


def _file(target: str, data: bytes, file: types_pb2.FileTarget) -> runtime_pb2.TaskFile:
    return runtime_pb2.TaskFile(
        target=target,
        data=data,
        uid=int(file.uid or "0"),
        gid=int(file.gid or "0"),
        mode=file.mode or DEFAULT_MODE,
    )


def secret_path(name: str) -> str:
    """A secret's file in the container: its target name under /run/secrets."""
    return posixpath.join(SECRETS_DIR, name.lstrip("/"))


def config_path(name: str) -> str:
    """A config's file in the container: its target, absolute."""
    return name if name.startswith("/") else "/" + name


def task_files(
    source: TaskFileSource | None, spec: types_pb2.ContainerSpec
) -> tuple[list[runtime_pb2.TaskFile], list[runtime_pb2.TaskFile]]:
    """The secret files and config files of `spec`, with their bytes from `source`."""
    secrets: list[runtime_pb2.TaskFile] = []
    configs: list[runtime_pb2.TaskFile] = []
    missing: list[str] = []
    for secret in spec.secrets:
        data = source.secret_data(secret.secret_id) if source is not None else None
        if data is None:
            missing.append(f"secret {secret.secret_name or secret.secret_id}")
        else:
            target = secret.file.name or secret.secret_name
            secrets.append(_file(secret_path(target), data, secret.file))
    for config in spec.configs:
        data = source.config_data(config.config_id) if source is not None else None
        if data is None:
            missing.append(f"config {config.config_name or config.config_id}")
        else:
            target = config.file.name or config.config_name
            configs.append(_file(config_path(target), data, config.file))
    if missing:
        raise MissingTaskFiles(f"not available on this node: {', '.join(missing)}")
    return secrets, configs
