"""pyswarm's default seccomp profile in the OCI runtime spec's form, so the runc and
crun anchors run under the same filter as pyswarm's containers (`runc spec` writes
none). Resolved for docker's default capabilities on this host, then written as
libseccomp rules: one rule per syscall action, conditions as OCI `args`."""

from __future__ import annotations

from typing import Any

from pyswarm.agent.runtime.container.capabilities import DEFAULT_CAPABILITIES
from pyswarm.agent.runtime.seccomp.arch import kernel_version, native_arch
from pyswarm.agent.runtime.seccomp.default_profile import default_profile
from pyswarm.agent.runtime.seccomp.docker_json import action_words
from pyswarm.agent.runtime.seccomp.profile import Condition, resolve

_OCI_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}


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
            rules.append({"names": [names[nr]], **action_words(action), "args": _args(conditions)})
        if per_syscall.otherwise != resolved.default_action:
            rules.append({"names": [names[nr]], **action_words(per_syscall.otherwise)})
    default = action_words(resolved.default_action)
    return {
        **{"default" + key[0].upper() + key[1:]: value for key, value in default.items()},
        "architectures": [_OCI_ARCH[arch.machine]] if arch.machine in _OCI_ARCH else [],
        "syscalls": rules,
    }
