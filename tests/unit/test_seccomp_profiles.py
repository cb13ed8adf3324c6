"""docker's seccomp profile format: what it means, and each bad input named."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pyswarm.agent.engine.confinement import confine_exec, confine_runtime
from pyswarm.agent.runtime.container.capabilities import DEFAULT_CAPABILITIES
from pyswarm.agent.runtime.seccomp import UNCONFINED, ProfileError, answer, seccomp_filter
from pyswarm.agent.runtime.seccomp.arch import X86_64, kernel_version, native_arch
from pyswarm.agent.runtime.seccomp.compiler import compile_filter
from pyswarm.agent.runtime.seccomp.docker_json import parse_profile
from pyswarm.agent.runtime.seccomp.profile import (
    ALLOW,
    EPERM,
    RET_KILL_PROCESS,
    RET_KILL_THREAD,
    RET_LOG,
    RET_TRACE,
    RET_TRAP,
    errno_action,
    resolve,
)
from pyswarm.proto import runtime_pb2, types_pb2

# A profile in docker's shape: allowlist, arch- and cap-gated rules, argument rules,
# names of other architectures' syscalls, the older single "name".
DOCKER_STYLE = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
    "syscalls": [
        {"names": ["read", "write", "exit_group", "chown32", "_llseek"],
         "action": "SCMP_ACT_ALLOW"},
        {"name": "getpid", "action": "SCMP_ACT_ALLOW", "comment": "older spelling"},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
        {"names": ["set_tls"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
        {"names": ["kcmp"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
            "excludes": {"caps": ["CAP_SYS_ADMIN"]},
        },
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
         "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["kill"], "action": "SCMP_ACT_KILL"},
        {"names": ["tkill"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["tgkill"], "action": "SCMP_ACT_TRAP"},
        {"names": ["uname"], "action": "SCMP_ACT_LOG"},
        {"names": ["getuid"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
    ],
}  # fmt: skip


def _answers(profile: dict[str, Any], caps: tuple[str, ...] = DEFAULT_CAPABILITIES) -> Any:
    parsed = parse_profile(json.dumps(profile))

    def ask(name: str, *args: int) -> int:
        program = compile_filter(resolve(parsed, caps, X86_64, (6, 1)), X86_64)
        return answer(program, X86_64.syscalls[name], args, X86_64.audit_arch)

    return ask


def test_docker_style_profile_means_what_docker_says() -> None:
    ask = _answers(DOCKER_STYLE)
    assert ask("read") == ALLOW
    assert ask("getpid") == ALLOW
    assert ask("openat") == EPERM
    assert ask("mount") == EPERM
    assert ask("arch_prctl") == ALLOW
    assert ask("ptrace") == ALLOW
    assert ask("kcmp") == EPERM  # needs a kernel 99.0
    assert ask("clone", 17) == ALLOW
    assert ask("clone", 0x10000000) == EPERM
    assert ask("clone3") == errno_action(38)
    assert ask("kill") == RET_KILL_THREAD
    assert ask("tkill") == RET_KILL_PROCESS
    assert ask("tgkill") == RET_TRAP
    assert ask("uname") == RET_LOG
    assert ask("getuid") == RET_TRACE | 7
    admin = _answers(DOCKER_STYLE, (*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"))
    assert admin("mount") == ALLOW
    assert admin("clone", 0x10000000) == EPERM  # no rule lets it through for admin here
    assert admin("clone3") == EPERM


def test_default_errno_ret_and_default_allow() -> None:
    ask = _answers({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38})
    assert ask("read") == errno_action(38)
    ask = _answers({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]})  # fmt: skip
    assert ask("mkdir") == EPERM
    assert ask("rmdir") == ALLOW


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('{"defaultAction": "SCMP_ACT_ALLOW",\n  "syscalls": [}', "not valid JSON: "),
        ('{"defaultAction": "SCMP_ACT_ALLOW",\n  "syscalls": [}', "line 2 column 16"),
        ("[]", "not a JSON object"),
        ("{}", "defaultAction is missing"),
        ('{"defaultAction": "SCMP_ACT_NOPE"}', "unknown action 'SCMP_ACT_NOPE'"),
        ('{"defaultAction": "SCMP_ACT_NOTIFY"}', "SCMP_ACT_NOTIFY is not supported"),
        ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdri"], '
         '"action": "SCMP_ACT_ERRNO"}]}', "unknown syscall 'mkdri'"),
        ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], '
         '"action": "SCMP_ACT_DENY"}]}', "syscalls[0]: unknown action 'SCMP_ACT_DENY'"),
        ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], '
         '"action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]}',
         "syscalls[0].args[0]: unknown op 'SCMP_CMP_XX'"),
        ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], '
         '"action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}',
         "index 6 is outside 0-5"),
        ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], '
         '"action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]}',
         "not a 64-bit unsigned value"),
        ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}',
         "syscalls[0]: no syscall names"),
        ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], '
         '"action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "five"}}]}', "not MAJOR.MINOR"),
        ('{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": "1"}',
         "defaultErrnoRet must be an integer"),
    ],
)  # fmt: skip
def test_bad_profile_is_named(text: str, named: str) -> None:
    with pytest.raises(ProfileError) as caught:
        seccomp_filter(text, DEFAULT_CAPABILITIES)
    message = str(caught.value)
    assert message.startswith("seccomp profile: ")
    assert named in message
    assert "\n" not in message
    assert caught.value.field == "security-opt"


def test_unconfined_is_no_filter_and_filters_are_compiled_once() -> None:
    assert seccomp_filter(UNCONFINED, DEFAULT_CAPABILITIES) == b""
    first = seccomp_filter("", DEFAULT_CAPABILITIES)
    assert seccomp_filter("", list(reversed(DEFAULT_CAPABILITIES))) is first
    admin = seccomp_filter("", (*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"))
    assert admin != first
    unshare = native_arch().syscalls["unshare"]
    assert answer(first, unshare) == EPERM
    assert answer(admin, unshare) == ALLOW


def test_kernel_version_reads_a_release() -> None:
    assert kernel_version("6.1.0-18-amd64") == (6, 1)
    assert kernel_version("4.8") == (4, 8)
    assert kernel_version("weird") == (0, 0)


def test_every_process_of_a_container_gets_its_confinement() -> None:
    caps = list(DEFAULT_CAPABILITIES)
    default = types_pb2.ContainerSpec(no_new_privileges=True)
    runtime = runtime_pb2.RuntimeSpec(capabilities=caps)
    confine_runtime(runtime, default)
    probe = runtime_pb2.ExecProcess(capabilities=caps)
    confine_exec(probe, default)
    assert runtime.seccomp_filter == probe.seccomp_filter == seccomp_filter("", caps)
    assert runtime.no_new_privileges and probe.no_new_privileges
    for spec in (
        types_pb2.ContainerSpec(privileged=True),
        types_pb2.ContainerSpec(seccomp_profile="unconfined"),
    ):
        process = runtime_pb2.ExecProcess(capabilities=caps)
        confine_exec(process, spec)
        assert process.seccomp_filter == b""
        assert not process.no_new_privileges
