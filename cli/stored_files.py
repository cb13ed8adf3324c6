"""`pyswarm secret ...` and `pyswarm config ...`: one command set, built per flavor.

docker's commands and output: `create [--label] NAME FILE|-` prints the id; `ls [-q]
[--format json] [--filter id=|label=|name=]` (ID NAME [DRIVER] CREATED UPDATED);
`inspect [--pretty] NAME...` (docker's JSON: never a secret's data, a config's in
base64); `rm NAME...`.
"""

from __future__ import annotations

import base64
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from pyswarm.cli.errors import apply_each
from pyswarm.cli.output import Format, ago, print_json, print_json_lines, print_table
from pyswarm.cli.parse import CliInputError
from pyswarm.common.manager_client import control
from pyswarm.proto import control_pb2, types_pb2

_FILTERS = ("id", "label", "name")


@dataclass(frozen=True)
class Flavor:
    what: str  # "secret" / "config"
    shows_data: bool  # configs' inspect shows the data; secrets' never
    has_driver: bool  # docker's secret ls has a DRIVER column


def read_data(file: str, what: str) -> bytes:
    """The bytes of FILE, or of stdin for "-"."""
    if file == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(file).read_bytes()
    except OSError as err:
        raise CliInputError(
            f"error reading {what} file {file}: {err.strerror or err}", field="file"
        ) from None


def _labels(values: list[str] | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for value in values or []:
        key, _, rest = value.partition("=")
        if not key:
            raise CliInputError(f"invalid --label {value!r}: KEY[=VALUE]", field="--label")
        labels[key] = rest
    return labels


def _time(stamp: Any) -> str:
    """docker's RFC 3339 time with nanoseconds."""
    seconds = stamp.ToDatetime().strftime("%Y-%m-%dT%H:%M:%S")
    return f"{seconds}.{stamp.nanos:09d}Z"


def to_json(flavor: Flavor, record: Any) -> dict[str, Any]:
    """docker's `secret inspect` / `config inspect` object."""
    spec: dict[str, Any] = {"Name": record.spec.annotations.name}
    spec["Labels"] = dict(record.spec.annotations.labels)
    if flavor.shows_data:
        spec["Data"] = base64.b64encode(record.spec.data).decode()
    return {
        "ID": record.id,
        "Version": {"Index": record.meta.version},
        "CreatedAt": _time(record.meta.created_at),
        "UpdatedAt": _time(record.meta.updated_at),
        "Spec": spec,
    }


def _matches(record: Any, filters: list[str]) -> bool:
    for item in filters:
        key, sep, value = item.partition("=")
        if key not in _FILTERS or not sep:
            raise CliInputError(
                f"invalid filter {item!r}: one of {', '.join(_FILTERS)} (KEY=VALUE)",
                field="--filter",
            )
        labels = record.spec.annotations.labels
        label_key, has_value, label_value = value.partition("=")
        ok = {
            "id": record.id.startswith(value),
            "name": value in record.spec.annotations.name,
            "label": label_key in labels and (not has_value or labels[label_key] == label_value),
        }[key]
        if not ok:
            return False
    return True


def _pretty(flavor: Flavor, record: Any) -> None:
    print(f"ID:              {record.id}")
    print(f"Name:            {record.spec.annotations.name}")
    labels = record.spec.annotations.labels
    if labels:
        print("Labels:")
        for key in sorted(labels):
            print(f" - {key}={labels[key]}")
    if flavor.has_driver:
        print("Driver:")
    print(f"Created at:      {record.meta.created_at.ToDatetime()} +0000 utc")
    print(f"Updated at:      {record.meta.updated_at.ToDatetime()} +0000 utc")
    if flavor.shows_data:
        print("Data:")
        sys.stdout.write(record.spec.data.decode(errors="replace") + "\n")


def build_app(flavor: Flavor, stub_calls: _Calls) -> typer.Typer:
    what = flavor.what
    app = typer.Typer(help=f"Manage the cluster's {what}s.", no_args_is_help=True)

    @app.command("create")
    def create(
        name: str,
        file: Annotated[str, typer.Argument(help="A file, or - for stdin")],
        label: Annotated[list[str] | None, typer.Option("-l", "--label")] = None,
    ) -> None:
        labels = _labels(label)
        record = stub_calls.create(name, labels, read_data(file, what))
        print(record.id)

    create.__doc__ = f"Create a {what} from a file or stdin."

    @app.command("ls")
    def ls(
        quiet: Annotated[bool, typer.Option("-q", "--quiet")] = False,
        format: Annotated[Format, typer.Option("--format")] = Format.table,
        filter: Annotated[list[str] | None, typer.Option("-f", "--filter")] = None,
    ) -> None:
        shown = [r for r in stub_calls.list() if _matches(r, filter or [])]
        if quiet:
            for record in shown:
                print(record.id)
            return
        rows = []
        for r in shown:
            row = {"ID": r.id, "Name": r.spec.annotations.name}
            if flavor.has_driver:
                row["Driver"] = ""
            row["CreatedAt"] = ago(r.meta.created_at.seconds)
            row["UpdatedAt"] = ago(r.meta.updated_at.seconds)
            rows.append(row)
        if format == Format.json:
            for row, record in zip(rows, shown, strict=True):
                labels = record.spec.annotations.labels
                row["Labels"] = ",".join(f"{k}={labels[k]}" for k in sorted(labels))
            print_json_lines(rows)
            return
        headers = ["ID", "NAME", *(["DRIVER"] if flavor.has_driver else []), "CREATED", "UPDATED"]
        print_table(headers, [list(row.values()) for row in rows])

    ls.__doc__ = f"List {what}s."

    @app.command("inspect")
    def inspect(
        refs: Annotated[list[str], typer.Argument()],
        pretty: Annotated[bool, typer.Option("--pretty")] = False,
    ) -> None:
        found = [stub_calls.get(ref) for ref in refs]
        if not pretty:
            print_json([to_json(flavor, record) for record in found])
            return
        for index, record in enumerate(found):
            if index:
                print()
            _pretty(flavor, record)

    inspect.__doc__ = f"Show {what}s in detail."

    @app.command("rm")
    def rm(refs: Annotated[list[str], typer.Argument()]) -> None:
        apply_each(refs, stub_calls.remove)

    rm.__doc__ = f"Remove {what}s (refused while a service uses one)."
    return app


class _Calls:
    """The four Control calls of one flavor."""

    def __init__(self, what: str) -> None:
        self.what = what

    def create(self, name: str, labels: dict[str, str], data: bytes) -> Any:
        annotations = types_pb2.Annotations(name=name, labels=labels)
        if self.what == "secret":
            return control().CreateSecret(
                control_pb2.CreateSecretRequest(
                    spec=types_pb2.SecretSpec(annotations=annotations, data=data)
                )
            )
        return control().CreateConfig(
            control_pb2.CreateConfigRequest(
                spec=types_pb2.ConfigSpec(annotations=annotations, data=data)
            )
        )

    def list(self) -> list[Any]:
        if self.what == "secret":
            return list(control().ListSecrets(control_pb2.ListSecretsRequest()).secrets)
        return list(control().ListConfigs(control_pb2.ListConfigsRequest()).configs)

    def get(self, ref: str) -> Any:
        if self.what == "secret":
            return control().GetSecret(control_pb2.GetSecretRequest(secret_id=ref))
        return control().GetConfig(control_pb2.GetConfigRequest(config_id=ref))

    def remove(self, ref: str) -> None:
        if self.what == "secret":
            control().RemoveSecret(control_pb2.RemoveSecretRequest(secret_id=ref))
        else:
            control().RemoveConfig(control_pb2.RemoveConfigRequest(config_id=ref))


def flavor_app(what: str) -> typer.Typer:
    flavor = Flavor(what, shows_data=what == "config", has_driver=what == "secret")
    return build_app(flavor, _Calls(what))
