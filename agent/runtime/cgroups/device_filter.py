"""cgroup v2's device allowlist: an eBPF program of type CGROUP_DEVICE.

v2 has no devices controller; the kernel instead runs the programs attached to a
cgroup (and its ancestors) on every device open and mknod, passing
`struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }` with the
device type in access_type's low 16 bits and the access bits in the high 16. The
program returns 1 to allow, 0 to deny. Ours checks the rules in order and denies
what none allows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pyswarm.agent.runtime.cgroups import ebpf
from pyswarm.agent.runtime.cgroups.devices import ANY, DeviceRule

# linux/bpf.h: BPF_DEVCG_DEV_* and BPF_DEVCG_ACC_*.
_TYPES = {"b": 1, "c": 2}
_ACCESS = {"m": 1, "r": 2, "w": 4}
_ALL_ACCESS = 7

# Registers: r1 is the context on entry, then scratch.
_CTX, _SCRATCH, _TYPE, _ACC, _MAJOR, _MINOR = 1, 1, 2, 3, 4, 5


def _access_bits(access: str) -> int:
    bits = 0
    for letter in access:
        bits |= _ACCESS[letter]
    return bits


def _rule_block(rule: DeviceRule, skip: str) -> list[ebpf.Insn | str]:
    """Allow and exit when the request matches `rule`; else fall to label `skip`."""
    block: list[ebpf.Insn | str] = []
    if rule.kind != "a":
        block.append(ebpf.jne_imm(_TYPE, _TYPES[rule.kind], skip))
    bits = _access_bits(rule.access)
    if bits != _ALL_ACCESS:
        # Every requested access bit must be one the rule grants.
        block += [
            ebpf.mov_reg(_SCRATCH, _ACC),
            ebpf.and_imm(_SCRATCH, _ALL_ACCESS & ~bits),
            ebpf.jne_imm(_SCRATCH, 0, skip),
        ]
    if rule.major != ANY:
        block.append(ebpf.jne_imm(_MAJOR, rule.major, skip))
    if rule.minor != ANY:
        block.append(ebpf.jne_imm(_MINOR, rule.minor, skip))
    block += [ebpf.mov_imm(0, 1), ebpf.exit_(), skip]
    return block


def device_program(rules: Sequence[DeviceRule]) -> bytes:
    """The encoded program allowing exactly what `rules` allow."""
    program: list[ebpf.Insn | str] = [
        ebpf.load_u32(_TYPE, _CTX, 0),
        ebpf.and_imm(_TYPE, 0xFFFF),
        ebpf.load_u32(_ACC, _CTX, 0),
        ebpf.rsh_imm(_ACC, 16),
        ebpf.load_u32(_MAJOR, _CTX, 4),
        ebpf.load_u32(_MINOR, _CTX, 8),
    ]
    for index, rule in enumerate(rules):
        program += _rule_block(rule, f"rule{index + 1}")
    program += [ebpf.mov_imm(0, 0), ebpf.exit_()]
    return ebpf.assemble(program)


def attach_device_filter(cgroup_dir: str, rules: Sequence[DeviceRule]) -> None:
    """Load the program for `rules` and attach it to the cgroup at `cgroup_dir`. The
    attachment holds the program: it lives until the cgroup is removed."""
    program_fd = ebpf.load_program(ebpf.BPF_PROG_TYPE_CGROUP_DEVICE, device_program(rules))
    try:
        ebpf.attach_to_cgroup(cgroup_dir, program_fd, ebpf.BPF_CGROUP_DEVICE)
    finally:
        os.close(program_fd)
