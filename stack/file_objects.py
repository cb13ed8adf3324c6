"""A stack's secrets and configs: read from the files, variables or inline content the
compose file names, created under the stack's names with its label, or checked to
exist when external; and the references services hold to them (targets as docker's
stack deploy sets them: the compose key under /run/secrets, or /KEY for a config)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyswarm.common.errors import NotFound
from pyswarm.proto import control_pb2, types_pb2
from pyswarm.stack.compose.loader import ComposeProject
from pyswarm.stack.errors import ComposeError
from pyswarm.stack.names import NAMESPACE_LABEL, Namer

SECRETS_DIR = "/run/secrets/"
DEFAULT_MODE = 0o444


@dataclass
class FileObject:
    kind: str  # "secrets" or "configs"
    key: str  # the compose key
    name: str  # the cluster's name
    data: bytes
    labels: dict[str, str]


def _data(kind: str, key: str, item: dict[str, Any], project: ComposeProject) -> bytes:
    path = f"{kind}.{key}"
    if "file" in item:
        try:
            return Path(item["file"]).read_bytes()
        except OSError as err:
            raise ComposeError(f"cannot read {item['file']}: {err.strerror}", field=path) from None
    if "environment" in item:
        value = project.lookup(item["environment"])
        if value is None:
            raise ComposeError(f"variable {item['environment']} is not set", field=path)
        return value.encode()
    return str(item.get("content", "")).encode()


def _used(project: ComposeProject, kind: str) -> set[str]:
    return {ref["source"] for s in project.services.values() for ref in s.get(kind, [])}


def wanted_objects(project: ComposeProject, namer: Namer) -> tuple[list[FileObject], list[str]]:
    """(what the stack creates or keeps, the names of external ones it needs)."""
    owned: list[FileObject] = []
    external: list[str] = []
    for kind in ("secrets", "configs"):
        defined = project.document.get(kind, {})
        for key in sorted(_used(project, kind)):
            item = defined[key]
            name = namer.object_name(key, item)
            if item.get("external"):
                external.append(f"{kind[:-1]}:{name}")
                continue
            labels = {k: v or "" for k, v in item.get("labels", {}).items()}
            labels[NAMESPACE_LABEL] = namer.stack
            owned.append(FileObject(kind, key, name, _data(kind, key, item, project), labels))
    return owned, external


def _existing(stub: Any, kind: str) -> dict[str, Any]:
    if kind == "secrets":
        found = stub.ListSecrets(control_pb2.ListSecretsRequest()).secrets
    else:
        found = stub.ListConfigs(control_pb2.ListConfigsRequest()).configs
    return {item.spec.annotations.name: item for item in found}


def check_external(stub: Any, external: list[str]) -> None:
    existing = {kind: _existing(stub, kind) for kind in ("secrets", "configs")}
    missing = []
    for entry in external:
        kind, _, name = entry.partition(":")
        if name not in existing[kind + "s"]:
            missing.append(f'{kind} "{name}" is declared as external, but could not be found')
    if missing:
        raise NotFound("; ".join(missing), field="external")


def apply_objects(stub: Any, owned: list[FileObject], say: Any) -> None:
    """Create what is missing; for what exists, send the labels and data again (the
    manager refuses changed data, as Swarm does: a secret's bytes are immutable)."""
    existing = {kind: _existing(stub, kind) for kind in ("secrets", "configs")}
    for item in owned:
        annotations = types_pb2.Annotations(name=item.name, labels=item.labels)
        found = existing[item.kind].get(item.name)
        what = item.kind[:-1]
        if item.kind == "secrets":
            spec: Any = types_pb2.SecretSpec(annotations=annotations, data=item.data)
            if found is None:
                say(f"Creating {what} {item.name}")
                stub.CreateSecret(control_pb2.CreateSecretRequest(spec=spec))
            else:  # the manager refuses changed bytes; the same ones and labels write nothing
                stub.UpdateSecret(control_pb2.UpdateSecretRequest(
                    secret_id=found.id, version=found.meta.version, spec=spec))  # fmt: skip
        else:
            spec = types_pb2.ConfigSpec(annotations=annotations, data=item.data)
            if found is None:
                say(f"Creating {what} {item.name}")
                stub.CreateConfig(control_pb2.CreateConfigRequest(spec=spec))
            elif found.spec.data != item.data:
                raise ComposeError(
                    f"config {item.name} exists with other data: configs are immutable;"
                    " give the changed config a new name",
                    field=f"configs.{item.key}",
                )
            elif dict(found.spec.annotations.labels) != item.labels:
                stub.UpdateConfig(control_pb2.UpdateConfigRequest(
                    config_id=found.id, version=found.meta.version, spec=spec))  # fmt: skip


def references(
    service: dict[str, Any], project: ComposeProject, namer: Namer,
    container: types_pb2.ContainerSpec,
) -> None:  # fmt: skip
    """The service's secret and config references, every field explicit."""
    for kind in ("secrets", "configs"):
        defined = project.document.get(kind, {})
        for ref in service.get(kind, []):
            source = ref["source"]
            target = str(ref.get("target") or source)
            if kind == "secrets":
                target = target.removeprefix(SECRETS_DIR)
            elif not target.startswith("/"):
                target = "/" + target
            file = types_pb2.FileTarget(
                name=target, uid=str(ref.get("uid", "0")), gid=str(ref.get("gid", "0")),
                mode=int(ref.get("mode", DEFAULT_MODE)),
            )  # fmt: skip
            name = namer.object_name(source, defined.get(source, {}))
            if kind == "secrets":
                container.secrets.add(secret_name=name, file=file)
            else:
                container.configs.add(config_name=name, file=file)
