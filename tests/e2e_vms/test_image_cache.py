"""The VM image cache: kept while the checkout is unchanged, and a damaged one rebuilt
with one line saying so. (This file sorts before the cluster tests, so no VM boots from
the cache while it is damaged here.)"""

from __future__ import annotations

import subprocess

import pytest

from pyswarm.lab.vms.image import VmImage
from pyswarm.lab.vms.state import labs_with_vms
from pyswarm.lab.vms.wheels import checkout_root

pytestmark = [pytest.mark.root, pytest.mark.timeout(1800)]  # a cold build takes minutes


def test_a_damaged_cached_image_is_rebuilt_and_said_in_one_line() -> None:
    assert labs_with_vms() == [], "a VM lab is up: its VMs boot from the cached image"
    image = VmImage()
    said: list[str] = []
    disk = image.ensure(checkout_root(), said.append)  # built here if it was not yet

    said.clear()
    assert image.ensure(checkout_root(), said.append) == disk
    assert said == ["the cached VM image has this pyswarm already"]

    with open(disk, "r+b") as damaged:  # zeros over the ext4 superblock
        damaged.seek(1024)
        damaged.write(b"\0" * 4096)
    said.clear()
    assert image.ensure(checkout_root(), said.append) == disk
    assert [line for line in said if "broken" in line] == [
        f"the cached VM image is broken (e2fsck finds {disk.name} damaged);"
        " reinstalling pyswarm into it"
    ]
    assert subprocess.run(["e2fsck", "-fn", str(disk)], capture_output=True).returncode == 0
