"""The device rules and the eBPF program compiled from them (encoding only; the
kernel runs it in tests/integration/test_device_cgroups.py)."""

from __future__ import annotations

import struct

import pytest

from pyswarm.agent.runtime.cgroups import DEFAULT_DEVICE_RULES, DeviceRule, InvalidLimit, ebpf
from pyswarm.agent.runtime.cgroups.device_filter import device_program
from pyswarm.agent.runtime.cgroups.devices import ANY, rule_for_node


def _decode(code: bytes) -> list[tuple[int, int, int, int, int]]:
    out = []
    for offset in range(0, len(code), 8):
        op, regs, off, imm = struct.unpack_from("<BBhi", code, offset)
        out.append((op, regs & 0xF, regs >> 4, off, imm))
    return out


def test_v1_lines_are_the_controllers_syntax() -> None:
    assert DeviceRule("c", 1, 3, "rwm").v1_line() == "c 1:3 rwm"
    assert DeviceRule("c", 136, ANY, "rwm").v1_line() == "c 136:* rwm"
    assert DeviceRule("b", ANY, ANY, "m").v1_line() == "b *:* m"


def test_default_rules_leave_out_tun() -> None:
    numbers = {(r.kind, r.major, r.minor) for r in DEFAULT_DEVICE_RULES}
    assert ("c", 1, 3) in numbers and ("c", 136, ANY) in numbers
    assert ("c", 10, 200) not in numbers


@pytest.mark.parametrize(("kind", "access"), [("x", "rwm"), ("c", "rwx"), ("c", "")])
def test_bad_rules_are_refused(kind: str, access: str) -> None:
    with pytest.raises(InvalidLimit):
        DeviceRule(kind, 1, 3, access)


def test_rule_for_node_reads_the_node_and_refuses_a_file() -> None:
    assert rule_for_node("/dev/null", "rw") == DeviceRule("c", 1, 3, "rw")
    with pytest.raises(InvalidLimit, match="/etc/passwd: not a device"):
        rule_for_node("/etc/passwd", "rwm")


def test_assembler_resolves_labels_from_the_next_instruction() -> None:
    code = ebpf.assemble(
        [ebpf.jne_imm(2, 7, "out"), ebpf.mov_imm(0, 1), ebpf.exit_(), "out", ebpf.exit_()]
    )
    first = _decode(code)[0]
    assert first == (0x55, 2, 0, 2, 7)
    with pytest.raises(ValueError, match="unknown label"):
        ebpf.assemble([ebpf.jne_imm(2, 7, "nowhere")])


def test_program_checks_each_rule_then_denies() -> None:
    insns = _decode(device_program([DeviceRule("c", 10, 200, "r")]))
    # Prologue: type, access, major, minor loaded from the context.
    assert [i[0] for i in insns[:6]] == [0x61, 0x57, 0x61, 0x77, 0x61, 0x61]
    body = insns[6:]
    jumps = [i for i in body if i[0] == 0x55]
    # type c (2), access beyond r (w|m = 5) refused, major 10, minor 200.
    assert [(i[1], i[4]) for i in jumps] == [(2, 2), (1, 0), (4, 10), (5, 200)]
    assert (0x57, 1, 0, 0, 5) in body
    # Every jump lands on the final "deny": r0 = 0; exit.
    deny = len(insns) - 2
    for index, insn in enumerate(insns):
        if insn[0] == 0x55:
            assert index + 1 + insn[3] == deny
    assert insns[-2:] == [(0xB7, 0, 0, 0, 0), (0x95, 0, 0, 0, 0)]
