"""What `pyswarm agent` and `pyswarm join` advertise about their node, with dockerd's
flags: `--label K=V` (engine labels: `--constraint engine.labels.K==V`) and
`--node-generic-resource KIND=N` (discrete resources: `service create
--generic-resource KIND=N`)."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from pyswarm.cli.parse import CliInputError

LabelOption = Annotated[
    list[str] | None,
    typer.Option("--label", help="A label of this node's engine: KEY=VALUE (repeatable)"),
]
NodeGenericResourceOption = Annotated[
    list[str] | None,
    typer.Option(
        "--node-generic-resource",
        help="A resource this node offers services: KIND=N (repeatable)",
    ),
]

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")


def parse_engine_labels(items: list[str]) -> tuple[tuple[str, str], ...]:
    labels: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if not _KEY.match(key):
            raise CliInputError(
                f'invalid argument "{item}" for "--label" flag: expected KEY=VALUE', field="--label"
            )
        labels[key] = value
    return tuple(labels.items())


def parse_node_generic_resources(items: list[str]) -> tuple[tuple[str, int], ...]:
    resources: dict[str, int] = {}
    flag = "--node-generic-resource"
    for item in items:
        kind, sep, value = item.partition("=")
        if not sep or not _KEY.match(kind) or not value.isdigit() or int(value) <= 0:
            raise CliInputError(
                f'invalid argument "{item}" for "{flag}" flag: expected KIND=N with N a'
                " positive whole number",
                field=flag,
            )
        resources[kind] = resources.get(kind, 0) + int(value)
    return tuple(resources.items())
