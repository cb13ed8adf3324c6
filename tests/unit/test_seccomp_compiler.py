"""The BPF we generate, run by the package's interpreter on seccomp_data samples."""

from __future__ import annotations

import itertools

import pytest

from pyswarm.agent.runtime.container.capabilities import DEFAULT_CAPABILITIES
from pyswarm.agent.runtime.seccomp import bpf
from pyswarm.agent.runtime.seccomp.arch import (
    AARCH64,
    AUDIT_ARCH_I386,
    X32_SYSCALL_BIT,
    X86_64,
    Arch,
)
from pyswarm.agent.runtime.seccomp.compiler import compile_filter
from pyswarm.agent.runtime.seccomp.default_profile import (
    ALWAYS_ALLOWED,
    NAMESPACE_FLAGS,
    default_profile,
)
from pyswarm.agent.runtime.seccomp.errors import ProfileError
from pyswarm.agent.runtime.seccomp.profile import (
    ALLOW,
    ENOSYS,
    EPERM,
    OPS,
    RET_KILL_PROCESS,
    Condition,
    Profile,
    Rule,
    errno_action,
    resolve,
)

KERNEL = (6, 1)
CLONE_NEWUSER = 0x10000000
SIGCHLD = 17


class Filter:
    """A compiled filter for one ABI, asked what it answers."""

    def __init__(self, profile: Profile, caps: tuple[str, ...] = DEFAULT_CAPABILITIES,
                 arch: Arch = X86_64) -> None:  # fmt: skip
        self.arch = arch
        self.raw = compile_filter(resolve(profile, caps, arch, KERNEL), arch)
        self.program = bpf.decode(self.raw)

    def __call__(self, name: str, *args: int) -> int:
        return self.nr(self.arch.syscalls[name], *args)

    def nr(self, nr: int, *args: int, arch: int | None = None) -> int:
        audit = self.arch.audit_arch if arch is None else arch
        return bpf.run(self.program, bpf.seccomp_data(nr, audit, args))


@pytest.fixture(scope="module")
def default() -> Filter:
    return Filter(default_profile())


@pytest.fixture(scope="module")
def admin() -> Filter:
    return Filter(default_profile(), (*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"))


def test_default_allows_the_ordinary_syscalls(default: Filter) -> None:
    names = [n for n in ALWAYS_ALLOWED.split() if n in X86_64.syscalls]
    assert len(names) > 280
    assert [n for n in names if default(n) != ALLOW] == []


@pytest.mark.parametrize(
    "name",
    ["keyctl", "add_key", "request_key", "userfaultfd", "io_uring_setup", "io_uring_enter",
     "kexec_load", "bpf", "mount", "umount2", "unshare", "setns", "open_by_handle_at",
     "init_module", "reboot", "swapon", "perf_event_open", "pivot_root"],
)  # fmt: skip
def test_default_denies_with_eperm(default: Filter, name: str) -> None:
    assert default(name) == EPERM


def test_capabilities_open_what_they_are_for(default: Filter, admin: Filter) -> None:
    for name in ("mount", "unshare", "setns", "umount2", "bpf", "sethostname"):
        assert admin(name) == ALLOW, name
    ptrace_caps = Filter(default_profile(), (*DEFAULT_CAPABILITIES, "CAP_SYS_PTRACE"))
    assert default("kcmp") == EPERM
    assert ptrace_caps("kcmp") == ALLOW
    assert default("chroot") == ALLOW  # CAP_SYS_CHROOT is a default capability
    assert Filter(default_profile(), ("CAP_CHOWN",))("chroot") == EPERM
    # Since 4.8 docker allows ptrace to everyone (the pid namespace bounds it).
    assert default("ptrace") == ALLOW
    assert Filter(default_profile(), (), X86_64).nr(X86_64.syscalls["ptrace"]) == ALLOW


def test_clone_namespaces_need_cap_sys_admin(default: Filter, admin: Filter) -> None:
    assert default("clone", SIGCHLD) == ALLOW
    assert default("clone", SIGCHLD | CLONE_NEWUSER) == EPERM
    for bit in range(32):
        flag = 1 << bit
        expected = EPERM if flag & NAMESPACE_FLAGS else ALLOW
        assert default("clone", flag) == expected, hex(flag)
    assert default("clone3") == ENOSYS  # libc falls back to clone
    assert admin("clone", CLONE_NEWUSER) == ALLOW
    assert admin("clone3") == ALLOW


def test_personality_only_its_safe_values(default: Filter) -> None:
    for persona in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert default("personality", persona) == ALLOW
    for persona in (0x0040000, 1, 0x0400000, 0xFFFFFFFE):
        assert default("personality", persona) == EPERM


def test_socket_refuses_vsock_only(default: Filter) -> None:
    assert default("socket", 2) == ALLOW  # AF_INET
    assert default("socket", 1) == ALLOW  # AF_UNIX
    assert default("socket", 40) == EPERM  # AF_VSOCK
    assert default("socket", 40 | 1 << 32) == ALLOW  # the high word counts too


def test_foreign_abis_are_killed(default: Filter) -> None:
    assert default.nr(X86_64.syscalls["read"], arch=AUDIT_ARCH_I386) == RET_KILL_PROCESS
    assert default.nr(0, arch=AARCH64.audit_arch) == RET_KILL_PROCESS
    assert default.nr(X32_SYSCALL_BIT | X86_64.syscalls["read"]) == RET_KILL_PROCESS


def test_numbers_past_the_table_get_enosys_and_minus_one_the_default(default: Filter) -> None:
    assert default.nr(X86_64.highest_syscall + 1) == ENOSYS
    assert default.nr(1000) == ENOSYS
    assert default.nr(-1) == EPERM
    allow_all = Filter(Profile(ALLOW, (Rule(("mkdir",), EPERM),)))
    assert allow_all.nr(1000) == ALLOW  # an allowing default lets new syscalls through


def test_aarch64_filter_uses_its_own_numbers() -> None:
    arm = Filter(default_profile(), DEFAULT_CAPABILITIES, AARCH64)
    assert arm("openat") == ALLOW
    assert arm("unshare") == EPERM
    assert arm("clone", CLONE_NEWUSER) == EPERM
    assert arm.nr(AARCH64.syscalls["openat"], arch=X86_64.audit_arch) == RET_KILL_PROCESS
    assert "arch_prctl" not in AARCH64.syscalls


def _holds(op: str, arg: int, value: int, value_two: int) -> bool:
    return {
        "SCMP_CMP_NE": arg != value,
        "SCMP_CMP_LT": arg < value,
        "SCMP_CMP_LE": arg <= value,
        "SCMP_CMP_EQ": arg == value,
        "SCMP_CMP_GE": arg >= value,
        "SCMP_CMP_GT": arg > value,
        "SCMP_CMP_MASKED_EQ": arg & value == value_two,
    }[op]


SAMPLES = [0, 1, 2, 0xFFFFFFFF, 1 << 32, (1 << 32) + 1, (5 << 32) | 7, (5 << 32) | 8,
           (4 << 32) | 0xFFFFFFFF, 1 << 63, (1 << 64) - 1]  # fmt: skip


@pytest.mark.parametrize("op", sorted(OPS))
def test_each_operator_compares_all_64_bits(op: str) -> None:
    for value, index in itertools.product(SAMPLES, (0, 3, 5)):
        value_two = value & 0xF0000000F
        rule = Rule(("mkdir",), ALLOW, (Condition(index, op, value, value_two),))
        program = Filter(Profile(EPERM, (rule,)))
        for arg in SAMPLES:
            args = [0] * 6
            args[index] = arg
            expected = ALLOW if _holds(op, arg, value, value_two) else EPERM
            assert program("mkdir", *args) == expected, (op, hex(value), hex(arg))


def test_conditions_of_a_rule_all_hold_and_rules_are_tried_in_order() -> None:
    rules = (
        Rule(("kill",), errno_action(13), (Condition(0, "SCMP_CMP_EQ", 1),
                                           Condition(1, "SCMP_CMP_EQ", 9))),
        Rule(("kill",), errno_action(22), (Condition(1, "SCMP_CMP_EQ", 9),)),
        Rule(("kill",), ALLOW),
    )  # fmt: skip
    program = Filter(Profile(EPERM, rules))
    assert program("kill", 1, 9) == errno_action(13)
    assert program("kill", 2, 9) == errno_action(22)
    assert program("kill", 1, 15) == ALLOW
    assert program("getpid") == EPERM


def test_far_jumps_go_through_long_jumps() -> None:
    # Hundreds of syscalls with conditions put most targets beyond an 8-bit offset.
    names = sorted(X86_64.syscalls, key=X86_64.syscalls.__getitem__)[:300]
    rules = tuple(
        Rule((name,), errno_action(i % 100 + 1), (Condition(0, "SCMP_CMP_GT", i),))
        for i, name in enumerate(names)
    )
    program = Filter(Profile(ALLOW, rules))
    assert len(program.program) > 1000
    assert any(ins.code == bpf.JMP_JA for ins in program.program)
    for i, name in enumerate(names):
        assert program(name, i + 1) == errno_action(i % 100 + 1), name
        assert program(name, i) == ALLOW, name


def test_a_program_over_the_kernels_limit_is_refused() -> None:
    names = tuple(X86_64.syscalls)
    rules = tuple(Rule(names, EPERM, (Condition(0, "SCMP_CMP_EQ", n),)) for n in range(3))
    with pytest.raises(ProfileError, match="over the kernel's limit of 4096"):
        Filter(Profile(ALLOW, rules))


def test_checker_refuses_what_the_kernel_refuses() -> None:
    ret = bpf.Instruction(bpf.RET_K, 0, 0, ALLOW)
    with pytest.raises(bpf.InvalidProgram, match="jump past the end"):
        bpf.check_program([bpf.Instruction(bpf.JMP_JEQ_K, 1, 0, 0), ret])
    with pytest.raises(bpf.InvalidProgram, match="load at offset 2"):
        bpf.check_program([bpf.Instruction(bpf.LD_W_ABS, 0, 0, 2), ret])
    with pytest.raises(bpf.InvalidProgram, match="not a return"):
        bpf.check_program([bpf.Instruction(bpf.LD_W_ABS, 0, 0, 0)])
    with pytest.raises(bpf.InvalidProgram, match="opcode"):
        bpf.check_program([bpf.Instruction(0x07, 0, 0, 0), ret])
    bpf.check_program(
        bpf.decode(compile_filter(resolve(default_profile(), (), X86_64, KERNEL), X86_64))
    )
