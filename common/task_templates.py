"""Swarm's service templates: `--hostname "{{.Service.Name}}-{{.Task.Slot}}"`.

A template's placeholders are Go template field chains, expanded on the agent for
each task (as SwarmKit's agent does) in the hostname, environment values and mount
sources. Only plain placeholders are understood, not Go's functions or pipelines;
the manager validates a spec's templates with `validate` so that a typo is refused
at `service create`, naming the field, instead of failing every task.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pyswarm.common.errors import InvalidArgument

FIELDS = (
    ".Service.ID",
    ".Service.Name",
    ".Node.ID",
    ".Node.Hostname",
    ".Node.Platform.OS",
    ".Node.Platform.Architecture",
    ".Task.ID",
    ".Task.Name",
    ".Task.Slot",
)
_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")


class InvalidTemplate(InvalidArgument):
    """A placeholder this expander does not know, or an unclosed `{{`."""


def _placeholders(template: str, field: str) -> list[tuple[re.Match[str], str]]:
    found = []
    for match in _ACTION.finditer(template):
        name = match.group(1)
        if name not in FIELDS:
            raise InvalidTemplate(
                f"invalid template in {field}: {{{{{name}}}}} is not one of"
                f" {', '.join('{{' + f + '}}' for f in FIELDS)}",
                field=field,
            )
        found.append((match, name))
    rest = _ACTION.sub("", template)
    if "{{" in rest or "}}" in rest:
        raise InvalidTemplate(f"invalid template in {field}: unclosed action", field=field)
    return found


def validate(template: str, field: str) -> None:
    _placeholders(template, field)


def expand(template: str, values: Mapping[str, str], field: str) -> str:
    """`template` with each placeholder replaced by values[".Task.Slot"] and so on."""
    if "{{" not in template and "}}" not in template:
        return template
    parts: list[str] = []
    position = 0
    for match, name in _placeholders(template, field):
        parts.append(template[position : match.start()])
        parts.append(values.get(name, ""))
        position = match.end()
    parts.append(template[position:])
    return "".join(parts)
