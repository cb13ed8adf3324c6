"""A container's seccomp filter and no_new_privs, for every process started in it.

The container's own process (RuntimeSpec), `exec` and health probes (ExecProcess),
and so Dockerfile RUN steps and cluster tasks, which are containers too, all get their
filter here, from the ContainerSpec and the capability set the process is given:
`--privileged` means no filter, `seccomp=unconfined` none either, otherwise the
profile compiled for those capabilities (cached, so only the first start of a
profile pays for compiling it).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyswarm.agent.runtime.seccomp import seccomp_filter
from pyswarm.proto import runtime_pb2, types_pb2


def process_filter(spec: types_pb2.ContainerSpec, capabilities: Sequence[str]) -> bytes:
    """The compiled filter for a process of this container holding `capabilities`
    (empty: none). ProfileError (INVALID_ARGUMENT) names a bad profile."""
    if spec.privileged:
        return b""
    return seccomp_filter(spec.seccomp_profile, capabilities)


def confine_runtime(runtime: runtime_pb2.RuntimeSpec, spec: types_pb2.ContainerSpec) -> None:
    """Fill the container process's filter and no_new_privs, for its capabilities."""
    runtime.seccomp_filter = process_filter(spec, runtime.capabilities)
    runtime.no_new_privileges = spec.no_new_privileges


def confine_exec(process: runtime_pb2.ExecProcess, spec: types_pb2.ContainerSpec) -> None:
    """An exec'd process or health probe gets its container's confinement."""
    process.seccomp_filter = process_filter(spec, process.capabilities)
    process.no_new_privileges = spec.no_new_privileges
