"""Device access rules for a container's cgroup: which device nodes it may open.

One rule shape for both hierarchies: v1 writes them to the `devices` controller's
files (deny everything, then allow each rule), v2 compiles them into an eBPF
program (device_filter.py). The default list is docker's, less /dev/net/tun: a
container may make any node (mknod) but open only the standard ones.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pyswarm.agent.runtime.cgroups import files
from pyswarm.agent.runtime.cgroups.errors import InvalidLimit

ANY = -1  # a major or minor of "*"
_KINDS = ("a", "c", "b")


@dataclass(frozen=True)
class DeviceRule:
    """Allow `access` (a subset of "rwm") to devices of `kind` ("c", "b", or "a" for
    both) numbered major:minor (ANY for "*")."""

    kind: str
    major: int = ANY
    minor: int = ANY
    access: str = "rwm"

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise InvalidLimit(f"invalid device type {self.kind!r}", field="devices")
        if not self.access or any(c not in "rwm" for c in self.access):
            raise InvalidLimit(
                f"invalid device permissions {self.access!r}: use r, w and m", field="devices"
            )

    @property
    def allows_everything(self) -> bool:
        return self.kind == "a" and set(self.access) == set("rwm")

    def v1_line(self) -> str:
        """The line the v1 devices controller reads ("c 1:3 rwm", "a *:* rwm")."""
        major = "*" if self.major == ANY else str(self.major)
        minor = "*" if self.minor == ANY else str(self.minor)
        return f"{self.kind} {major}:{minor} {self.access}"


def _char(major: int, minor: int) -> DeviceRule:
    return DeviceRule("c", major, minor, "rwm")


# docker's default allowlist (without its 10:200 /dev/net/tun).
DEFAULT_DEVICE_RULES: tuple[DeviceRule, ...] = (
    DeviceRule("c", ANY, ANY, "m"),
    DeviceRule("b", ANY, ANY, "m"),
    _char(1, 3),  # null
    _char(1, 5),  # zero
    _char(1, 7),  # full
    _char(1, 8),  # random
    _char(1, 9),  # urandom
    _char(5, 0),  # tty
    _char(5, 1),  # console
    _char(5, 2),  # ptmx
    _char(136, ANY),  # pts/*
)
ALLOW_ALL: tuple[DeviceRule, ...] = (DeviceRule("a", ANY, ANY, "rwm"),)


def allows_everything(rules: Sequence[DeviceRule]) -> bool:
    return any(rule.allows_everything for rule in rules)


def device_kind(info: os.stat_result) -> str:
    """ "c" or "b" for a character or block device node, "" for anything else."""
    if stat.S_ISCHR(info.st_mode):
        return "c"
    return "b" if stat.S_ISBLK(info.st_mode) else ""


def rule_for_node(path: str, access: str) -> DeviceRule:
    """The rule allowing `access` to the device node at `path` (its type and numbers);
    InvalidLimit naming the path when it is not a device node."""
    try:
        info = os.stat(path)
    except OSError as err:
        raise InvalidLimit(f"{path}: {err.strerror}", field="devices") from err
    kind = device_kind(info)
    if not kind:
        raise InvalidLimit(f"{path}: not a device", field="devices")
    return DeviceRule(kind, os.major(info.st_rdev), os.minor(info.st_rdev), access)


def write_v1_rules(directory: Path, rules: Sequence[DeviceRule]) -> None:
    """Replace the v1 cgroup's device list with `rules` (deny all, then allow each)."""
    if allows_everything(rules):
        files.write(directory / "devices.allow", "a")
        return
    files.write(directory / "devices.deny", "a")
    for rule in rules:
        files.write(directory / "devices.allow", rule.v1_line())
