"""Profile -> seccomp BPF program.

The program, in order:
  1. the ABI: anything but the native audit arch is killed (see arch.py);
  2. the syscall number: x32 numbers are killed; numbers above every syscall this table
     knows get ENOSYS unless the default allows (a kernel newer than our table: libc
     falls back, as runc arranges too); -1 (a tracer skipping a call) gets the default;
  3. a binary search over the syscall numbers that have rules, so a syscall costs about
     log2(n) compares rather than n;
  4. per syscall, its argument conditions (64-bit values as two 32-bit halves), in
     order, then its unconditional action, or the default.

The program is built back to front: every jump target exists before the jump, so its
distance is known, and a conditional jump too far for its 8-bit offsets goes through
an unconditional `ja` (32-bit offset) placed right after it.
"""

from __future__ import annotations

from pyswarm.agent.runtime.seccomp import bpf
from pyswarm.agent.runtime.seccomp.arch import X32_SYSCALL_BIT, Arch
from pyswarm.agent.runtime.seccomp.errors import ProfileError
from pyswarm.agent.runtime.seccomp.profile import (
    ENOSYS,
    RET_ALLOW,
    RET_KILL_PROCESS,
    RET_LOG,
    Condition,
    Resolved,
    SyscallRules,
)

Label = int  # an emitted instruction, counted from the end of the program
_LEAF_SIZE = 4  # syscalls compared one by one at the bottom of the search
_MAX_JUMP = 255
_NO_SYSCALL = 0xFFFFFFFF  # nr -1


class _Backwards:
    """Instructions emitted last-first; labels stay valid as the program grows."""

    def __init__(self) -> None:
        self._reversed: list[bpf.Instruction] = []

    def emit(self, code: int, k: int = 0) -> Label:
        self._reversed.append(bpf.Instruction(code, 0, 0, k & 0xFFFFFFFF))
        return len(self._reversed)

    def last(self) -> Label:
        """The instruction emitted last: the one that runs next when falling through."""
        return len(self._reversed)

    def jump(self, code: int, k: int, if_true: Label, if_false: Label) -> Label:
        while True:
            here = len(self._reversed) + 1
            if here - if_true - 1 > _MAX_JUMP:
                if_true = self._long_jump(if_true)
            elif here - if_false - 1 > _MAX_JUMP:
                if_false = self._long_jump(if_false)
            else:
                break
        self._reversed.append(
            bpf.Instruction(code, here - if_true - 1, here - if_false - 1, k & 0xFFFFFFFF)
        )
        return here

    def _long_jump(self, target: Label) -> Label:
        here = len(self._reversed) + 1
        self._reversed.append(bpf.Instruction(bpf.JMP_JA, 0, 0, here - target - 1))
        return here

    def program(self) -> list[bpf.Instruction]:
        return self._reversed[::-1]


class _Compiler:
    def __init__(self, resolved: Resolved, arch: Arch) -> None:
        self.resolved = resolved
        self.arch = arch
        self.out = _Backwards()
        self.returns: dict[int, Label] = {}

    def ret(self, action: int) -> Label:
        return self.returns[action]

    def compile(self) -> list[bpf.Instruction]:
        resolved = self.resolved
        actions = {resolved.default_action, RET_KILL_PROCESS, ENOSYS}
        for rules in resolved.syscalls.values():
            actions.add(rules.otherwise)
            actions.update(action for _, action in rules.conditional)
        # Returns first (they end the program): no code ever falls through into one.
        for action in sorted(actions):
            self.returns[action] = self.out.emit(bpf.RET_K, action)
        bodies = {nr: self._body(rules) for nr, rules in sorted(resolved.syscalls.items())}
        self._number_checks(self._search(sorted(bodies.items())))
        self.out.emit(bpf.LD_W_ABS, bpf.OFFSET_NR)
        kill = self.ret(RET_KILL_PROCESS)
        self.out.jump(bpf.JMP_JEQ_K, self.arch.audit_arch, self.out.last(), kill)
        self.out.emit(bpf.LD_W_ABS, bpf.OFFSET_ARCH)
        return self.out.program()

    def _number_checks(self, entry: Label) -> Label:
        default = self.ret(self.resolved.default_action)
        out = self.out
        if self.resolved.default_action not in (RET_ALLOW, RET_LOG):
            entry = out.jump(bpf.JMP_JGT_K, self.arch.highest_syscall, self.ret(ENOSYS), entry)
        if self.arch.has_x32:
            entry = out.jump(bpf.JMP_JGE_K, X32_SYSCALL_BIT, self.ret(RET_KILL_PROCESS), entry)
        return out.jump(bpf.JMP_JEQ_K, _NO_SYSCALL, default, entry)

    def _search(self, entries: list[tuple[int, Label]]) -> Label:
        """Binary search over (syscall number, body) sorted by number; A holds nr."""
        out = self.out
        if len(entries) <= _LEAF_SIZE:
            miss = self.ret(self.resolved.default_action)
            for nr, body in reversed(entries):
                miss = out.jump(bpf.JMP_JEQ_K, nr, body, miss)
            return miss
        middle = len(entries) // 2
        upper = self._search(entries[middle:])
        lower = self._search(entries[:middle])
        return out.jump(bpf.JMP_JGE_K, entries[middle][0], upper, lower)

    def _body(self, rules: SyscallRules) -> Label:
        entry = self.ret(rules.otherwise)
        for conditions, action in reversed(rules.conditional):
            matched = self.ret(action)
            for condition in reversed(conditions):
                matched = self._condition(condition, matched, entry)
            entry = matched
        return entry

    def _condition(self, cond: Condition, match: Label, fail: Label) -> Label:
        """Code that goes to `match` when the condition holds, else to `fail`."""
        out = self.out
        low_at, high_at = bpf.arg_offsets(cond.index)
        value_low, value_high = cond.value & 0xFFFFFFFF, (cond.value >> 32) & 0xFFFFFFFF
        op = cond.op
        if op in ("SCMP_CMP_EQ", "SCMP_CMP_NE"):
            if op == "SCMP_CMP_NE":
                match, fail = fail, match
            out.jump(bpf.JMP_JEQ_K, value_low, match, fail)
            out.emit(bpf.LD_W_ABS, low_at)
            out.jump(bpf.JMP_JEQ_K, value_high, out.last(), fail)
            return out.emit(bpf.LD_W_ABS, high_at)
        if op == "SCMP_CMP_MASKED_EQ":
            want_low = cond.value_two & value_low
            want_high = (cond.value_two >> 32) & value_high
            out.jump(bpf.JMP_JEQ_K, want_low, match, fail)
            out.emit(bpf.ALU_AND_K, value_low)
            out.emit(bpf.LD_W_ABS, low_at)
            out.jump(bpf.JMP_JEQ_K, want_high, out.last(), fail)
            out.emit(bpf.ALU_AND_K, value_high)
            return out.emit(bpf.LD_W_ABS, high_at)
        # Orderings: LT is "not GE" and LE is "not GT".
        if op in ("SCMP_CMP_LT", "SCMP_CMP_LE"):
            match, fail = fail, match
        low_jump = bpf.JMP_JGE_K if op in ("SCMP_CMP_GE", "SCMP_CMP_LT") else bpf.JMP_JGT_K
        out.jump(low_jump, value_low, match, fail)
        out.emit(bpf.LD_W_ABS, low_at)
        label = out.jump(bpf.JMP_JEQ_K, value_high, out.last(), fail)
        out.jump(bpf.JMP_JGT_K, value_high, match, label)
        return out.emit(bpf.LD_W_ABS, high_at)


def compile_filter(resolved: Resolved, arch: Arch) -> bytes:
    """The filter as `struct sock_filter[]` bytes; ProfileError when it would be
    longer than the kernel takes."""
    program = _Compiler(resolved, arch).compile()
    if len(program) > bpf.BPF_MAXINSNS:
        raise ProfileError(
            f"compiles to {len(program)} BPF instructions, over the kernel's limit of "
            f"{bpf.BPF_MAXINSNS}"
        )
    bpf.check_program(program)
    return bpf.encode(program)
