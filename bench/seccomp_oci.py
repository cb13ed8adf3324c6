"""pyswarm's default seccomp profile in the OCI runtime spec's form, so the runc and
crun anchors run under the same filter as pyswarm's containers (`runc spec` writes
none). Resolved for docker's default capabilities on this host, then written as
libseccomp rules: one rule per syscall action, conditions as OCI `args`."""

from __future__ import annotations

from typing import Any

from pyswarm.agent.runtime.container.capabilities import DEFAULT_CAPABILITIES
from pyswarm.agent.runtime.seccomp.arch import kernel_version, native_arch
from pyswarm.agent.runtime.seccomp.default_profile import default_profile
from pyswarm.agent.runtime.seccomp.profile import (
    RET_ALLOW,
    RET_DATA_MASK,
    RET_ERRNO,
    RET_KILL_PROCESS,
    RET_KILL_THREAD,
    RET_LOG,
    RET_TRACE,
    RET_TRAP,
    Condition,
    resolve,
)

_OCI_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}
_ACTIONS = {
    RET_ALLOW: "SCMP_ACT_ALLOW",
    RET_KILL_PROCESS: "SCMP_ACT_KILL_PROCESS",
    RET_KILL_THREAD: "SCMP_ACT_KILL_THREAD",
    RET_TRAP: "SCMP_ACT_TRAP",
    RET_LOG: "SCMP_ACT_LOG",
}


def _action(value: int) -> dict[str, Any]:
    kind = value & ~RET_DATA_MASK
    if kind == RET_ERRNO:
        return {"action": "SCMP_ACT_ERRNO", "errnoRet": value & RET_DATA_MASK}
    if kind == RET_TRACE:
        return {"action": "SCMP_ACT_TRACE", "errnoRet": value & RET_DATA_MASK}
    return {"action": _ACTIONS[value]}


def _args(conditions: tuple[Condition, ...]) -> list[dict[str, Any]]:
    return [
        {"index": c.index, "value": c.value, "valueTwo": c.value_two, "op": c.op}
        for c in conditions
    ]


def oci_seccomp() -> dict[str, Any]:
    """The `linux.seccomp` section of an OCI config.json."""
    arch = native_arch()
    resolved = resolve(default_profile(), DEFAULT_CAPABILITIES, arch, kernel_version())
    names = {nr: name for name, nr in arch.syscalls.items()}
    rules: list[dict[str, Any]] = []
    for nr, per_syscall in sorted(resolved.syscalls.items()):
        for conditions, action in per_syscall.conditional:
            rules.append({"names": [names[nr]], **_action(action), "args": _args(conditions)})
        if per_syscall.otherwise != resolved.default_action:
            rules.append({"names": [names[nr]], **_action(per_syscall.otherwise)})
    default = _action(resolved.default_action)
    return {
        **{"default" + key[0].upper() + key[1:]: value for key, value in default.items()},
        "architectures": [_OCI_ARCH[arch.machine]] if arch.machine in _OCI_ARCH else [],
        "syscalls": rules,
    }
