"""Compiled filters, once per (profile, capability set): what the agent hands out.

The compiled bytes go into RuntimeSpec.seccomp_filter / ExecProcess.seccomp_filter; the
container's child only installs them (see syscalls.install_seccomp_filter), so the
start path never parses or compiles.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from pyswarm.agent.runtime.seccomp import bpf
from pyswarm.agent.runtime.seccomp.arch import kernel_version, native_arch
from pyswarm.agent.runtime.seccomp.compiler import compile_filter
from pyswarm.agent.runtime.seccomp.default_profile import default_profile
from pyswarm.agent.runtime.seccomp.docker_json import parse_profile
from pyswarm.agent.runtime.seccomp.profile import Profile, resolve

UNCONFINED = "unconfined"
# docker's names for its own default profile: none given, or "builtin".
DEFAULT_NAMES = ("", "builtin")


def _profile(text: str) -> Profile:
    return default_profile() if text.strip() in DEFAULT_NAMES else parse_profile(text)


@functools.lru_cache(maxsize=128)
def _compiled(text: str, capabilities: frozenset[str]) -> bytes:
    arch = native_arch()
    return compile_filter(resolve(_profile(text), capabilities, arch, kernel_version()), arch)


def seccomp_filter(profile: str, capabilities: Iterable[str]) -> bytes:
    """The filter for a process holding `capabilities` under `profile`: "" (or
    "builtin") for our default, "unconfined" for none (empty bytes), else docker's
    JSON profile text.

    ProfileError names what is wrong with a bad profile.
    """
    if profile.strip() == UNCONFINED:
        return b""
    return _compiled(profile, frozenset(capabilities))


def answer(program: bytes, nr: int, args: tuple[int, ...] = (), arch: int | None = None) -> int:
    """What `program` returns for syscall `nr` of the native ABI (or `arch`)."""
    native = native_arch().audit_arch if arch is None else arch
    return bpf.run(bpf.decode(program), bpf.seccomp_data(nr, native, args))
