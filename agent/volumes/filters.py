"""docker's volume filters: `volume ls --filter name=|label=|dangling=|driver=` and
`volume prune --filter label=|label!=`. Values of one key are alternatives (any may
match), different keys must all match, as docker combines them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pyswarm.agent.volumes.errors import BadVolumeFilter
from pyswarm.proto import agent_pb2

LIST_KEYS = ("name", "label", "dangling", "driver")
PRUNE_KEYS = ("label", "label!")
_BOOLS = {"true": True, "1": True, "false": False, "0": False}


@dataclass
class VolumeFilter:
    values: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, texts: Iterable[str], keys: tuple[str, ...] = LIST_KEYS) -> VolumeFilter:
        parsed = cls()
        for text in texts:
            key, sep, value = text.partition("=")
            if not sep:
                raise BadVolumeFilter(
                    f"bad format of filter (expected name=value): {text}", field="filter"
                )
            if key not in keys:
                raise BadVolumeFilter(f"invalid filter '{key}'", field="filter")
            if key == "dangling" and value.lower() not in _BOOLS:
                raise BadVolumeFilter(
                    f"invalid filter 'dangling={value}': expected true, false, 1 or 0",
                    field="filter",
                )
            parsed.values.setdefault(key, []).append(value)
        return parsed

    def matches(self, volume: agent_pb2.Volume, *, in_use: bool) -> bool:
        for key, values in self.values.items():
            hits = [_check(key, value, volume, in_use) for value in values]
            if not (all(hits) if key == "label!" else any(hits)):
                return False
        return True


def _check(key: str, value: str, volume: agent_pb2.Volume, in_use: bool) -> bool:
    if key == "name":
        return value in volume.name
    if key == "driver":
        return value == volume.driver
    if key == "dangling":
        return _BOOLS[value.lower()] != in_use
    if key == "label":
        return _has_label(volume, value)
    return not _has_label(volume, value)  # label!


def _has_label(volume: agent_pb2.Volume, wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    if key not in volume.labels:
        return False
    return not sep or volume.labels[key] == value
