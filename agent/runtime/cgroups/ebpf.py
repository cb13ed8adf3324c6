"""A tiny eBPF assembler and the two bpf(2) commands a device filter needs.

Only the instructions device_filter.py emits are here: 32-bit loads from the
program's context, 64-bit ALU with an immediate or a register, conditional jumps
against an immediate, and exit. Encodings are the kernel's (linux/bpf.h,
linux/bpf_common.h); `struct bpf_insn` is opcode, dst|src<<4, off, imm.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pyswarm.agent.runtime import syscalls as sc

# Instruction classes, sizes, modes, operations, sources.
_LDX, _ALU64, _JMP = 0x01, 0x07, 0x05
_W, _MEM = 0x00, 0x60
_AND, _RSH, _MOV = 0x50, 0x70, 0xB0
_JNE, _EXIT = 0x50, 0x90
_K, _X = 0x00, 0x08

# bpf(2) commands, program and attach types, flags.
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

_ATTR_SIZE = 128  # larger than any member we fill; the kernel wants the tail zeroed
_LOG_SIZE = 1 << 16
LICENSE = b"Apache-2.0\0"


@dataclass(frozen=True)
class Insn:
    """One eBPF instruction. `target` names a label for jumps (resolved by assemble)."""

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    target: str = ""

    def encode(self) -> bytes:
        return struct.pack("<BBhi", self.code, (self.src << 4) | self.dst, self.off, self.imm)


def load_u32(dst: int, src: int, offset: int) -> Insn:
    """dst = *(u32 *)(src + offset)"""
    return Insn(_LDX | _MEM | _W, dst, src, offset)


def and_imm(dst: int, imm: int) -> Insn:
    return Insn(_ALU64 | _AND | _K, dst, imm=imm)


def rsh_imm(dst: int, imm: int) -> Insn:
    return Insn(_ALU64 | _RSH | _K, dst, imm=imm)


def mov_imm(dst: int, imm: int) -> Insn:
    return Insn(_ALU64 | _MOV | _K, dst, imm=imm)


def mov_reg(dst: int, src: int) -> Insn:
    return Insn(_ALU64 | _MOV | _X, dst, src)


def jne_imm(dst: int, imm: int, target: str) -> Insn:
    """if dst != imm goto target"""
    return Insn(_JMP | _JNE | _K, dst, imm=imm, target=target)


def exit_() -> Insn:
    return Insn(_JMP | _EXIT)


def assemble(program: Sequence[Insn | str]) -> bytes:
    """Encode `program`; a str item is a label for the instruction that follows it."""
    labels: dict[str, int] = {}
    insns: list[Insn] = []
    for item in program:
        if isinstance(item, str):
            if item in labels:
                raise ValueError(f"label {item!r} defined twice")
            labels[item] = len(insns)
        else:
            insns.append(item)
    encoded = bytearray()
    for pc, insn in enumerate(insns):
        if insn.target:
            if insn.target not in labels:
                raise ValueError(f"jump to unknown label {insn.target!r}")
            # Jump offsets count from the next instruction.
            insn = replace(insn, off=labels[insn.target] - pc - 1)
        encoded += insn.encode()
    return bytes(encoded)


def load_program(prog_type: int, code: bytes) -> int:
    """Load `code` as a program of `prog_type`; returns its fd. A verifier refusal
    is an OSError whose message carries the verifier's log."""
    try:
        return _load(prog_type, code, with_log=False)
    except OSError as err:
        first = err
    # Again with the verifier's log, for a message that says why.
    os.close(_load(prog_type, code, with_log=True))
    raise first


def _load(prog_type: int, code: bytes, *, with_log: bool) -> int:
    insns = ctypes.create_string_buffer(code, len(code))
    license_text = ctypes.create_string_buffer(LICENSE, len(LICENSE))
    log = ctypes.create_string_buffer(_LOG_SIZE if with_log else 1)
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into(
        "<IIQQIIQ",
        attr,
        0,
        prog_type,
        len(code) // 8,
        ctypes.addressof(insns),
        ctypes.addressof(license_text),
        1 if with_log else 0,
        _LOG_SIZE if with_log else 0,
        ctypes.addressof(log) if with_log else 0,
    )
    try:
        return sc.bpf(BPF_PROG_LOAD, attr)
    except OSError as err:
        if not with_log:
            raise
        verifier = log.value.decode(errors="replace").strip().splitlines()
        raise OSError(err.errno, f"bpf program refused: {' / '.join(verifier[-3:])}") from err


def attach_to_cgroup(directory: str, program_fd: int, attach_type: int) -> None:
    """Attach a loaded program to the cgroup at `directory`, alongside any others
    (ALLOW_MULTI: every attached program on the path must allow)."""
    cgroup_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        attr = ctypes.create_string_buffer(_ATTR_SIZE)
        struct.pack_into("<IIII", attr, 0, cgroup_fd, program_fd, attach_type, BPF_F_ALLOW_MULTI)
        sc.bpf(BPF_PROG_ATTACH, attr)
    finally:
        os.close(cgroup_fd)
