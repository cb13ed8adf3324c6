"""A container process's settings beyond the exec basics, applied by its init
checklist: namespaced sysctls (written while /proc/sys is still writable), resource
limits (set while still root) and extra supplementary groups, and whether pid 1
stays an init (pid_one.py).

Failures are OSErrors whose message names the sysctl or limit, for the checklist's
`step` to report.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass

from pyswarm.common.sysctls import proc_path
from pyswarm.common.ulimits import RESOURCES, UNLIMITED
from pyswarm.proto import runtime_pb2


@dataclass(frozen=True)
class ProcessSettings:
    groups: tuple[str, ...] = ()
    rlimits: tuple[runtime_pb2.Rlimit, ...] = ()
    init: bool = False
    tty: bool = False

    @classmethod
    def of(cls, spec: runtime_pb2.RuntimeSpec) -> ProcessSettings:
        return cls(tuple(spec.groups), tuple(spec.rlimits), spec.init, spec.tty)


def write_sysctls(proc_sys: str, sysctls: dict[str, str]) -> None:
    """Each `name` to <proc_sys>/<name as a path>; the files act on the namespaces of
    the writer (the agent has checked the names)."""
    for name, value in sysctls.items():
        try:
            fd = os.open(
                os.path.join(proc_sys, proc_path(name)), os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW
            )
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except OSError as err:
            raise OSError(err.errno, f"{name}={value}: {err.strerror}") from err


def set_rlimits(rlimits: Sequence[runtime_pb2.Rlimit]) -> None:
    for limit in rlimits:
        soft, hard = (
            resource.RLIM_INFINITY if value == UNLIMITED else value
            for value in (limit.soft, limit.hard)
        )
        try:
            resource.setrlimit(RESOURCES[limit.name], (soft, hard))
        except (OSError, ValueError, KeyError) as err:
            reason = getattr(err, "strerror", None) or str(err)
            raise OSError(0, f"{limit.name}={limit.soft}:{limit.hard}: {reason}") from err
