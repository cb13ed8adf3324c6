"""Classic BPF as seccomp uses it: the few opcodes we emit, their encoding, and an
interpreter that runs a filter on a `struct seccomp_data` the way the kernel would.

The interpreter is how the compiler is checked (tests, and `check_program` before a
filter is handed out): a program we emit must be one the kernel accepts, and must
answer each syscall as the profile says.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

# <linux/filter.h> opcodes (class | size | mode, class | op | src).
LD_W_ABS = 0x20  # A = *(u32 *)(data + k)
ALU_AND_K = 0x54  # A &= k
JMP_JA = 0x05  # pc += k
JMP_JEQ_K = 0x15  # pc += (A == k) ? jt : jf
JMP_JGT_K = 0x25  # pc += (A > k) ? jt : jf
JMP_JGE_K = 0x35  # pc += (A >= k) ? jt : jf
JMP_JSET_K = 0x45  # pc += (A & k) ? jt : jf
RET_K = 0x06  # return k

BPF_MAXINSNS = 4096  # the kernel refuses longer programs
SECCOMP_DATA_SIZE = 64  # nr, arch, instruction_pointer, args[6]

# struct seccomp_data offsets.
OFFSET_NR = 0
OFFSET_ARCH = 4
OFFSET_ARGS = 16

_INSTRUCTION = struct.Struct("=HBBI")  # struct sock_filter, native byte order
INSTRUCTION_SIZE = _INSTRUCTION.size


@dataclass(frozen=True)
class Instruction:
    code: int
    jt: int
    jf: int
    k: int


def encode(program: Sequence[Instruction]) -> bytes:
    return b"".join(_INSTRUCTION.pack(i.code, i.jt, i.jf, i.k & 0xFFFFFFFF) for i in program)


def decode(raw: bytes) -> list[Instruction]:
    if len(raw) % INSTRUCTION_SIZE:
        raise ValueError(f"a filter is a whole number of {INSTRUCTION_SIZE}-byte instructions")
    return [Instruction(*fields) for fields in _INSTRUCTION.iter_unpack(raw)]


def arg_offsets(index: int) -> tuple[int, int]:
    """(low word, high word) offsets of 64-bit argument `index` (little-endian ABIs)."""
    low = OFFSET_ARGS + 8 * index
    return low, low + 4


def seccomp_data(nr: int, arch: int, args: Sequence[int] = (), ip: int = 0) -> bytes:
    """A `struct seccomp_data` for syscall `nr` of ABI `arch` with up to six args."""
    padded = [a & 0xFFFFFFFFFFFFFFFF for a in args] + [0] * (6 - len(args))
    return struct.pack("=iIQ6Q", nr, arch, ip, *padded)


class InvalidProgram(ValueError):
    """A program the kernel's checker would refuse."""


def check_program(program: Sequence[Instruction]) -> None:
    """Refuse what the kernel refuses: too long, an unknown opcode, a jump past the end,
    an unaligned or out-of-range load, a last instruction that is not a return."""
    if not 0 < len(program) <= BPF_MAXINSNS:
        raise InvalidProgram(f"{len(program)} instructions (1 to {BPF_MAXINSNS} allowed)")
    for pc, ins in enumerate(program):
        remaining = len(program) - pc - 1
        if ins.code == LD_W_ABS:
            if ins.k % 4 or ins.k >= SECCOMP_DATA_SIZE:
                raise InvalidProgram(f"instruction {pc}: load at offset {ins.k}")
        elif ins.code == JMP_JA:
            if ins.k >= remaining:
                raise InvalidProgram(f"instruction {pc}: jump past the end")
        elif ins.code in (JMP_JEQ_K, JMP_JGT_K, JMP_JGE_K, JMP_JSET_K):
            if ins.jt >= remaining or ins.jf >= remaining:
                raise InvalidProgram(f"instruction {pc}: jump past the end")
        elif ins.code not in (ALU_AND_K, RET_K):
            raise InvalidProgram(f"instruction {pc}: opcode {ins.code:#x}")
    if program[-1].code != RET_K:
        raise InvalidProgram("the last instruction is not a return")


def run(program: Sequence[Instruction], data: bytes) -> int:
    """The value the filter returns for `data` (a 64-byte struct seccomp_data)."""
    accumulator = 0
    pc = 0
    while True:
        ins = program[pc]
        pc += 1
        if ins.code == RET_K:
            return ins.k
        if ins.code == LD_W_ABS:
            accumulator = int.from_bytes(data[ins.k : ins.k + 4], "little")
        elif ins.code == ALU_AND_K:
            accumulator &= ins.k
        elif ins.code == JMP_JA:
            pc += ins.k
        else:
            taken = {
                JMP_JEQ_K: accumulator == ins.k,
                JMP_JGT_K: accumulator > ins.k,
                JMP_JGE_K: accumulator >= ins.k,
                JMP_JSET_K: bool(accumulator & ins.k),
            }[ins.code]
            pc += ins.jt if taken else ins.jf
