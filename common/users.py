"""Resolve a docker `--user` value against the container's /etc/passwd and /etc/group.

Runs inside the container (after pivot_root), so names mean what the image says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class UserLookupError(Exception):
    """The user or group does not exist in the container; the message says which."""


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups
    home: str


def _entries(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_user(
    spec: str,
    passwd: Path = Path("/etc/passwd"),
    group: Path = Path("/etc/group"),
    *,
    extra_groups: Sequence[str] = (),
) -> ResolvedUser:
    """ "" = root; "uid", "name", "uid:gid", "name:group" as docker.

    A numeric uid missing from passwd is allowed (gid 0, home "/"), as docker; a
    name missing from passwd is an error. `extra_groups` (--group-add: names or gids)
    join the supplementary groups; a name missing from the group file is an error.
    """
    user_part, _, group_part = spec.partition(":")
    user_part = user_part or "0"
    users = [e for e in _entries(passwd) if len(e) >= 7]
    match = next((e for e in users if e[0] == user_part), None)
    if match is None and user_part.isdigit():
        match = next((e for e in users if e[2] == user_part), None)
    if match is None:
        if not user_part.isdigit():
            raise UserLookupError(
                f"unable to find user {user_part}: no matching entries in passwd file"
            )
        uid, gid, name, home = int(user_part), 0, "", "/"
    else:
        uid, gid, name, home = int(match[2]), int(match[3]), match[0], match[5] or "/"
    groups_table = [e for e in _entries(group) if len(e) >= 4]
    if group_part:
        found = next((e for e in groups_table if e[0] == group_part), None)
        if found is not None:
            gid = int(found[2])
        elif group_part.isdigit():
            gid = int(group_part)
        else:
            raise UserLookupError(
                f"unable to find group {group_part}: no matching entries in group file"
            )
    supplementary: list[int] = []
    if name:
        for entry in groups_table:
            members = entry[3].split(",") if entry[3] else []
            if name in members and int(entry[2]) not in supplementary:
                supplementary.append(int(entry[2]))
    if gid not in supplementary:
        supplementary.insert(0, gid)
    for extra in extra_groups:
        found = next((e for e in groups_table if e[0] == extra), None)
        if found is None and not extra.isdigit():
            raise UserLookupError(
                f"unable to find group {extra}: no matching entries in group file"
            )
        number = int(found[2]) if found is not None else int(extra)
        if number not in supplementary:
            supplementary.append(number)
    return ResolvedUser(uid=uid, gid=gid, groups=tuple(supplementary), home=home)
