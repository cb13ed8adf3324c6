"""Which kernel parameters a container may set (`--sysctl`), as docker allows them.

Only parameters that live in a namespace the container owns: its network namespace
(`net.*`), its IPC namespace (`kernel.msg*`, `kernel.sem`, `kernel.shm*`,
`fs.mqueue.*`). Anything else would change the host for every container, so it is
refused, naming the parameter. The manager checks a service's at create/update, the
CLI before sending and the agent again before writing /proc/sys.
"""

from __future__ import annotations

import re

from pyswarm.common.errors import InvalidArgument

IPC_SYSCTLS = frozenset(
    {
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    }
)
IPC_PREFIXES = ("fs.mqueue.",)
NET_PREFIX = "net."
# Dotted names of plain components: nothing that could walk out of /proc/sys.
_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$")


class InvalidSysctl(InvalidArgument):
    """A parameter a container may not set, or a malformed one."""


def is_net(name: str) -> bool:
    return name.startswith(NET_PREFIX)


def validate_sysctl(name: str, value: str, *, host_network: bool = False) -> None:
    """InvalidSysctl naming `name` unless a container may set it to `value`."""
    if not _NAME.match(name):
        raise InvalidSysctl(f"invalid sysctl {name!r}: expected a dotted name", field="sysctl")
    namespaced = name in IPC_SYSCTLS or name.startswith(IPC_PREFIXES) or is_net(name)
    if not namespaced:
        raise InvalidSysctl(
            f"sysctl {name!r} is not allowed: only namespaced ones (net.*, kernel.msg*,"
            " kernel.sem, kernel.shm*, fs.mqueue.*)",
            field="sysctl",
        )
    if host_network and is_net(name):
        raise InvalidSysctl(
            f"sysctl {name!r} is not allowed in the host's network namespace", field="sysctl"
        )
    if not value or "\n" in value:
        raise InvalidSysctl(f"invalid value {value!r} for sysctl {name!r}", field="sysctl")


def validate_sysctls(sysctls: dict[str, str], *, host_network: bool = False) -> None:
    for name, value in sysctls.items():
        validate_sysctl(name, value, host_network=host_network)


def parse_sysctl(text: str) -> tuple[str, str]:
    """`NAME=VALUE` (docker's --sysctl), checked."""
    name, sep, value = text.partition("=")
    if not sep:
        raise InvalidSysctl(f"invalid sysctl {text!r}: expected NAME=VALUE", field="sysctl")
    validate_sysctl(name.strip(), value)
    return name.strip(), value


def proc_path(name: str) -> str:
    """Its file under /proc/sys: `net.ipv4.ip_forward` -> `net/ipv4/ip_forward`."""
    return name.replace(".", "/")
