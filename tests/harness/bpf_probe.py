"""A 300-byte static x86-64 program that tries to load a BPF program and exits with
the errno it got (0 = loaded): the escape probe busybox cannot make.

It calls bpf(BPF_PROG_LOAD) for a socket filter "r0 = 0; exit" (built with the
runtime's own eBPF assembler) under the "GPL" license, and exits. The machine code,
from this source (GNU as syntax):

    sub $128,%rsp; mov %rsp,%rdi; xor %eax,%eax; mov $16,%ecx; rep stosq  # zeroed attr
    movl $1,(%rsp)                 # prog_type = BPF_PROG_TYPE_SOCKET_FILTER
    movl $2,4(%rsp)                # insn_cnt
    lea insns(%rip),%rax; mov %rax,8(%rsp)
    lea license(%rip),%rax; mov %rax,16(%rsp)
    mov $321,%eax; mov $5,%edi; mov %rsp,%rsi; mov $128,%edx; syscall   # bpf(PROG_LOAD)
    xor %edi,%edi; test %rax,%rax; jns 1f; mov %eax,%edi; neg %edi
    1: mov $60,%eax; syscall       # exit(errno or 0)
    insns: (16 bytes)  license: "GPL\\0"
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from pyswarm.agent.runtime.cgroups import ebpf

_CODE = bytes.fromhex(
    "4881ec80000000" "4889e7" "31c0" "b910000000" "f348ab"
    "c7042401000000" "c744240402000000"
    "488d0537000000" "4889442408"
    "488d053b000000" "4889442410"
    "b841010000" "bf05000000" "4889e6" "ba80000000" "0f05"
    "31ff" "4885c0" "7904" "89c7" "f7df"
    "b83c000000" "0f05"
)  # fmt: skip
_BASE = 0x400000
_HEADERS = 64 + 56  # one ELF header, one program header


def program() -> bytes:
    """The probe as a static ELF executable."""
    bpf_insns = ebpf.assemble([ebpf.mov_imm(0, 0), ebpf.exit_()])
    body = _CODE + bpf_insns + b"GPL\0"
    size = _HEADERS + len(body)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, SysV
    header = struct.pack(
        "<16sHHIQQQIHHHHHH", ident, 2, 0x3E, 1, _BASE + _HEADERS, 64, 0, 0, 64, 56, 1, 0, 0, 0
    )
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x1000)  # PT_LOAD, r-x
    return header + load + body


def write_probe(directory: Path) -> Path:
    """Write the probe as `directory`/bpf-load (mode 0755); its path."""
    path = directory / "bpf-load"
    path.write_bytes(program())
    os.chmod(path, 0o755)
    return path
