"""Linux capability names and numbers, and docker's default set for containers."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pyswarm.agent.runtime.container.errors import InvalidCapability

# Numbers from linux/capability.h.
CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}

DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)


def normalize(name: str) -> str:
    """ "net_admin", "NET_ADMIN" and "CAP_NET_ADMIN" all name CAP_NET_ADMIN."""
    upper = name.strip().upper()
    return upper if upper.startswith("CAP_") else f"CAP_{upper}"


def parse_capabilities(names: Iterable[str]) -> list[str]:
    """Canonical names, in order without duplicates; InvalidCapability on an unknown one.

    "ALL" stands for every capability (as docker's --cap-add ALL).
    """
    result: list[str] = []
    for name in names:
        if name.strip().upper() in ("ALL", "CAP_ALL"):
            expanded = list(CAPABILITIES)
        else:
            canonical = normalize(name)
            if canonical not in CAPABILITIES:
                raise InvalidCapability(f"unknown capability: {name!r}", field="capabilities")
            expanded = [canonical]
        result.extend(c for c in expanded if c not in result)
    return result


def capability_mask(names: Iterable[str]) -> int:
    """The 64-bit mask of the named capabilities."""
    mask = 0
    for name in parse_capabilities(names):
        mask |= 1 << CAPABILITIES[name]
    return mask


def last_capability(proc_file: Path = Path("/proc/sys/kernel/cap_last_cap")) -> int:
    """The highest capability number this kernel knows (for dropping the rest)."""
    try:
        return int(proc_file.read_text())
    except (OSError, ValueError):
        return max(CAPABILITIES.values())


def bounding_set(status_file: Path = Path("/proc/self/status")) -> int:
    """This process's capability bounding set: what it can hand a container at most
    (a host may withhold some from root, e.g. CAP_SYS_RESOURCE)."""
    try:
        for line in status_file.read_text().splitlines():
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return (1 << (last_capability() + 1)) - 1


def names_of(mask: int) -> list[str]:
    """The capability names set in `mask` (numbers the table lacks as "CAP_<n>")."""
    by_number = {n: name for name, n in CAPABILITIES.items()}
    return [by_number.get(bit, f"CAP_{bit}") for bit in range(64) if mask >> bit & 1]
