"""Reading /proc/<pid>/mountinfo: which mounts a mount namespace holds.

Kept apart from host_mounts.py (which makes mounts) so that the supervisor, which forks
every container and so wants a small heap, reads the table without importing more.
"""

from __future__ import annotations


def mount_table(path: str = "/proc/self/mountinfo") -> list[tuple[str, str]]:
    """(mount point, filesystem type) of each line of a mountinfo file."""
    table = []
    with open(path, encoding="utf-8", errors="surrogateescape") as info:
        for line in info:
            mine, separator, theirs = line.partition(" - ")
            fields = mine.split(" ")
            if separator and len(fields) > 4:
                table.append((unescape(fields[4]), theirs.split(" ", 1)[0]))
    return table


def mount_points() -> set[str]:
    """Every mount point of the calling process's mount namespace."""
    return {point for point, _ in mount_table()}


def unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040)."""
    out = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
