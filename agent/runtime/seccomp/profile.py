"""What a seccomp profile says, in docker's terms, and what it means on this host.

A `Profile` is docker's profile document as data: a default action and rules, each
rule naming syscalls, an action, argument conditions, and gates (`includes`/`excludes`
by capability, architecture and kernel version). `resolve` applies the gates for one
capability set, ABI and kernel, giving per-syscall-number rules the compiler turns into
BPF.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from dataclasses import dataclass, field

from pyswarm.agent.runtime.seccomp.arch import Arch, known_syscall_names
from pyswarm.agent.runtime.seccomp.errors import ProfileError

# <linux/seccomp.h> return values (action | data).
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000
RET_DATA_MASK = 0x0000FFFF

# docker's comparison operators (libseccomp's enum scmp_compare).
OPS = frozenset(
    {
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    }
)


def errno_action(number: int = errno.EPERM) -> int:
    return RET_ERRNO | (number & RET_DATA_MASK)


ALLOW = RET_ALLOW
EPERM = errno_action(errno.EPERM)
ENOSYS = errno_action(errno.ENOSYS)


@dataclass(frozen=True)
class Condition:
    """Argument `index` compared with `value` by `op`; for SCMP_CMP_MASKED_EQ,
    `(arg & value) == value_two`. All 64-bit."""

    index: int
    op: str
    value: int
    value_two: int = 0


@dataclass(frozen=True)
class Gate:
    """docker's includes/excludes: capabilities (all needed to include, any excludes),
    architectures (docker's names), and the lowest kernel (major, minor)."""

    caps: frozenset[str] = frozenset()
    arches: frozenset[str] = frozenset()
    min_kernel: tuple[int, int] | None = None


@dataclass(frozen=True)
class Rule:
    names: tuple[str, ...]
    action: int
    conditions: tuple[Condition, ...] = ()
    includes: Gate = field(default_factory=Gate)
    excludes: Gate = field(default_factory=Gate)


@dataclass(frozen=True)
class Profile:
    default_action: int
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class SyscallRules:
    """One syscall's rules after the gates: conditional ones tried in profile order, then
    `otherwise` (its unconditional action, or the profile's default)."""

    conditional: tuple[tuple[tuple[Condition, ...], int], ...]
    otherwise: int


@dataclass(frozen=True)
class Resolved:
    default_action: int
    syscalls: dict[int, SyscallRules]


def _applies(rule: Rule, caps: frozenset[str], arch: Arch, kernel: tuple[int, int]) -> bool:
    inc, exc = rule.includes, rule.excludes
    if inc.caps and not inc.caps <= caps:
        return False
    if inc.arches and not inc.arches & arch.names:
        return False
    if inc.min_kernel is not None and kernel < inc.min_kernel:
        return False
    if exc.caps & caps or exc.arches & arch.names:
        return False
    return not (exc.min_kernel is not None and kernel >= exc.min_kernel)


def check_names(names: Iterable[str]) -> None:
    """Refuse a syscall name no Linux ABI has (a typo), naming it."""
    known = known_syscall_names()
    for name in names:
        if name not in known:
            raise ProfileError(f"unknown syscall {name!r}")


def resolve(profile: Profile, caps: Iterable[str], arch: Arch, kernel: tuple[int, int]) -> Resolved:
    """The profile's rules for a process holding `caps` on `arch` under `kernel`.

    Names of syscalls this ABI lacks are skipped (docker's profiles name those of every
    architecture). A rule whose action is the default changes nothing and is dropped.
    """
    cap_set = frozenset(caps)
    conditional: dict[int, list[tuple[tuple[Condition, ...], int]]] = {}
    unconditional: dict[int, int] = {}
    for rule in profile.rules:
        if not _applies(rule, cap_set, arch, kernel):
            continue
        for name in rule.names:
            nr = arch.syscalls.get(name)
            if nr is None:
                continue
            if rule.conditions:
                conditional.setdefault(nr, []).append((rule.conditions, rule.action))
            else:
                # The first unconditional rule for a syscall wins, as the first match
                # would in a list of rules.
                unconditional.setdefault(nr, rule.action)
    syscalls: dict[int, SyscallRules] = {}
    for nr in set(conditional) | set(unconditional):
        otherwise = unconditional.get(nr, profile.default_action)
        kept = tuple(
            (conds, action) for conds, action in conditional.get(nr, []) if action != otherwise
        )
        if kept or otherwise != profile.default_action:
            syscalls[nr] = SyscallRules(kept, otherwise)
    return Resolved(profile.default_action, syscalls)
