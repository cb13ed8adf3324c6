"""The VM lab's pure parts: the mirror found in apt's sources, the memory check, QEMU's
command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyswarm.lab.errors import LabError
from pyswarm.lab.vms.host_checks import check_memory
from pyswarm.lab.vms.mirror import debian_mirror
from pyswarm.lab.vms.qemu import qemu_argv
from pyswarm.lab.vms.state import VmLabState, VmRecord

DEB822 = """Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main

Types: deb
# a comment
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
"""


def test_the_mirror_is_the_debian_main_source_of_apt(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    assert debian_mirror(tmp_path) == "http://mirror.invalid/debian"


def test_a_one_line_sources_list_works_too(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# deb http://old.invalid/debian bookworm main\n"
        "deb [arch=amd64] http://mirror.invalid/debian/ bookworm main contrib\n"
    )
    assert debian_mirror(tmp_path) == "http://mirror.invalid/debian/"


def test_no_debian_source_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    with pytest.raises(LabError, match="PYSWARM_LAB_MIRROR"):
        debian_mirror(tmp_path)


def test_memory_for_the_vms_and_the_host_or_a_refusal(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 8000000 kB\nMemAvailable:    4194304 kB\n")
    check_memory([1536, 1024], meminfo)  # 3.5 GiB of 4 available
    with pytest.raises(LabError, match=r"not enough memory for 3 VMs: they need 4608 MiB"):
        check_memory([1536, 1024, 1024], meminfo)


def test_qemu_gets_the_vm_its_address_mac_and_accelerator() -> None:
    state = VmLabState(name="t", subnet="10.232.0.0/24", netns="t-vms", uplink="tvmh",
                       accelerator="tcg", kernel="/k", initrd="/i")  # fmt: skip
    vm = VmRecord(name="node-2", address="10.232.0.12/24", mac="52:54:00:00:00:02",
                  tap="tap2", disk="/d.qcow2", memory_mib=1024)  # fmt: skip
    argv = qemu_argv(state, vm)
    cmdline = argv[argv.index("-append") + 1]
    assert "pyswarm.addr=10.232.0.12/24" in cmdline and "pyswarm.mac=52:54:00:00:00:02" in cmdline
    assert "systemd.hostname=node-2" in cmdline
    assert argv[argv.index("-accel") + 1].startswith("tcg")
    assert "ifname=tap2" in " ".join(argv)
    state.accelerator = "kvm"
    assert qemu_argv(state, vm)[qemu_argv(state, vm).index("-accel") + 1] == "kvm"
