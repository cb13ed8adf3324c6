"""The architectures we build filters for: their audit numbers and syscall tables.

A filter is written for the native ABI only. A syscall made through another ABI of the
same CPU (i386 through int 0x80, or x86_64's x32 ABI, both reachable from a 64-bit
process) kills the process: rules keyed on x86_64 numbers would mean other syscalls
there, and these ABIs are a classic way around a filter.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from pyswarm.agent.runtime.seccomp import syscall_tables
from pyswarm.agent.runtime.seccomp.errors import UnsupportedArchitecture

# <linux/audit.h>: EM_* | __AUDIT_ARCH_64BIT (0x80000000) | __AUDIT_ARCH_LE (0x40000000).
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
AUDIT_ARCH_I386 = 0x40000003
# x32 syscalls are x86_64 numbers with this bit set (__X32_SYSCALL_BIT).
X32_SYSCALL_BIT = 0x40000000


def _parse_table(text: str) -> dict[str, int]:
    words = text.split()
    return {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)}


@dataclass(frozen=True)
class Arch:
    """One ABI: `machine` as os.uname() says it, `names` as docker's profiles say it
    (includes/excludes "arches", and the SCMP_ARCH_* of "architectures")."""

    machine: str
    audit_arch: int
    names: frozenset[str]
    syscalls: dict[str, int]
    has_x32: bool

    @property
    def highest_syscall(self) -> int:
        return max(self.syscalls.values())


X86_64 = Arch(
    machine="x86_64",
    audit_arch=AUDIT_ARCH_X86_64,
    names=frozenset({"amd64", "x86_64", "SCMP_ARCH_X86_64"}),
    syscalls=_parse_table(syscall_tables.X86_64),
    has_x32=True,
)
AARCH64 = Arch(
    machine="aarch64",
    audit_arch=AUDIT_ARCH_AARCH64,
    names=frozenset({"arm64", "aarch64", "SCMP_ARCH_AARCH64"}),
    syscalls=_parse_table(syscall_tables.AARCH64),
    has_x32=False,
)
ARCHES = {arch.machine: arch for arch in (X86_64, AARCH64)}


def native_arch() -> Arch:
    machine = os.uname().machine
    if machine not in ARCHES:
        raise UnsupportedArchitecture(f"no seccomp syscall table for {machine}")
    return ARCHES[machine]


@functools.cache
def known_syscall_names() -> frozenset[str]:
    """Every syscall name of every Linux ABI we know of: a profile naming anything
    else has a typo, and is refused."""
    names = set(syscall_tables.OTHER_ARCH_NAMES.split())
    for arch in ARCHES.values():
        names.update(arch.syscalls)
    return frozenset(names)


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of the running kernel (or of `release`, e.g. "6.1.0-18-amd64")."""
    text = release if release is not None else os.uname().release
    parts = text.split("-", 1)[0].split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return 0, 0
