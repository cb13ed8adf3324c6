"""`service create --secret/--config` and `service update --secret-add/--secret-rm/
--config-add/--config-rm`, with docker's syntax: `NAME` or
`source=NAME,target=PATH,uid=0,gid=0,mode=0444` (`src` for source; mode in octal with a
leading 0, as docker reads it). The manager resolves the names (NOT_FOUND naming a
missing one, nothing created) and fills in the defaults."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pyswarm.cli.parse import CliInputError
from pyswarm.proto import types_pb2

_Many = list[str] | None
SecretOption = Annotated[
    _Many,
    typer.Option("--secret", help="Secret to expose: NAME or source=,target=,uid=,gid=,mode="),
]
ConfigOption = Annotated[
    _Many,
    typer.Option("--config", help="Config to expose: NAME or source=,target=,uid=,gid=,mode="),
]
SecretAddOption = Annotated[_Many, typer.Option("--secret-add", help="Add or update a secret")]
SecretRmOption = Annotated[_Many, typer.Option("--secret-rm", help="Remove a secret")]
ConfigAddOption = Annotated[_Many, typer.Option("--config-add", help="Add or update a config")]
ConfigRmOption = Annotated[_Many, typer.Option("--config-rm", help="Remove a config")]


def _mode(value: str, flag: str) -> int:
    try:
        if len(value) > 1 and value.startswith("0") and value[1].isdigit():
            return int(value, 8)
        return int(value, 0)
    except ValueError:
        raise CliInputError(f"invalid mode {value!r} in {flag}: a number", field=flag) from None


def parse_file_reference(value: str, flag: str) -> tuple[str, types_pb2.FileTarget]:
    """The source name and file target of one --secret/--config value."""
    target = types_pb2.FileTarget()
    if "=" not in value:
        if not value or "," in value:
            raise CliInputError(f"invalid {flag} value {value!r}", field=flag)
        return value, target
    source = ""
    for part in value.split(","):
        key, sep, item = part.partition("=")
        if not sep:
            raise CliInputError(f"invalid field '{part}' must be a key=value pair", field=flag)
        key = key.strip().lower()
        if key in ("source", "src"):
            source = item
        elif key == "target":
            target.name = item
        elif key in ("uid", "gid"):
            if not item.isdigit():
                raise CliInputError(f"invalid {key} {item!r} in {flag}: a number", field=flag)
            setattr(target, key, item)
        elif key == "mode":
            target.mode = _mode(item, flag)
        else:
            raise CliInputError(f"invalid field key {key} in {flag}", field=flag)
    if not source:
        raise CliInputError(f"source is required in {flag} {value!r}", field=flag)
    return source, target


def secret_reference(value: str, flag: str = "--secret") -> types_pb2.SecretReference:
    name, target = parse_file_reference(value, flag)
    return types_pb2.SecretReference(secret_name=name, file=target)


def config_reference(value: str, flag: str = "--config") -> types_pb2.ConfigReference:
    name, target = parse_file_reference(value, flag)
    return types_pb2.ConfigReference(config_name=name, file=target)


def apply_create_files(spec: types_pb2.ServiceSpec, secrets: list[str], configs: list[str]) -> None:
    container = spec.task.container
    container.secrets.extend(secret_reference(v) for v in secrets)
    container.configs.extend(config_reference(v) for v in configs)


def _remove(references: Any, names: list[str], id_field: str, name_field: str) -> None:
    kept = [
        ref
        for ref in references
        if getattr(ref, name_field) not in names and getattr(ref, id_field) not in names
    ]
    del references[:]
    references.extend(kept)


def apply_file_changes(
    spec: types_pb2.ServiceSpec,
    secret_add: list[str],
    secret_rm: list[str],
    config_add: list[str],
    config_rm: list[str],
) -> None:
    """docker's order: removals first, then additions (an added one replaces one of
    the same name)."""
    added_secrets = [secret_reference(v, "--secret-add") for v in secret_add]
    added_configs = [config_reference(v, "--config-add") for v in config_add]
    container = spec.task.container
    _remove(
        container.secrets,
        secret_rm + [r.secret_name for r in added_secrets],
        "secret_id",
        "secret_name",
    )
    _remove(
        container.configs,
        config_rm + [r.config_name for r in added_configs],
        "config_id",
        "config_name",
    )
    container.secrets.extend(added_secrets)
    container.configs.extend(added_configs)
