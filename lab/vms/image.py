"""The VM image, built once from Debian's packages and cached under the lab's root.

Two layers, each rebuilt only when what it is made of changed:
- the base: a minbase Debian root by debootstrap with a kernel, systemd, the QEMU guest
  agent and the Debian packages deploy/install.sh installs (so the VMs never need a
  network beyond the lab), keyed by that package list;
- pyswarm: deploy/install.sh run in a chroot of the base with the checkout's wheel,
  then an ext4 disk made from the root (mkfs.ext4 -d), keyed by the wheel's content and
  the deploy files. A changed wheel is installed into the cached root, not the whole
  image rebuilt.

A cache that fails its checks (a stamp that does not parse, a file missing, a disk
e2fsck finds broken) is rebuilt, and the caller is told so in one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from pyswarm.common.json_files import write_json
from pyswarm.lab.errors import LabError
from pyswarm.lab.state import LAB_ROOT
from pyswarm.lab.vms.mirror import debian_mirror
from pyswarm.lab.vms.state import labs_with_vms
from pyswarm.lab.vms.wheels import build_wheel, fill_wheelhouse, wheel_digest

SUITE = "bookworm"  # Debian 12, what deploy/install.sh is for
VM_PACKAGES = ["systemd", "systemd-sysv", "udev", "qemu-guest-agent", "linux-image-cloud-amd64"]
# Timers and units a short-lived lab VM has no use for (they would only slow its boot).
MASKED_UNITS = [
    "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service",
    "fstrim.timer", "getty@tty1.service", "systemd-timesyncd.service",
]  # fmt: skip
DISK_HEADROOM_MIB = 3072  # room in each VM for images and containers
# The initramfs holds only what finds the root disk and the NIC. Debian's default
# (MODULES=most, every storage and network driver) spent 40-90 s of a TCG boot in its
# udev coldplug and settle: the kernel's part of a boot went from 64-104 s to 9-11 s.
INITRAMFS_MODULES = ["virtio_pci", "virtio_blk", "virtio_net"]
# What else makes the base besides its packages: a change here rebuilds it.
BASE_RECIPE = "initramfs=" + ",".join(INITRAMFS_MODULES)

Progress = Callable[[str], None]


def _run(argv: list[str], what: str, log: Path | None = None) -> None:
    if log is None:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        output, code = result.stdout + result.stderr, result.returncode
    else:
        with open(log, "w") as out:
            code = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, check=False
            ).returncode
        output = log.read_text(errors="replace")
    if code != 0:
        tail = " | ".join(output.strip().splitlines()[-4:])
        raise LabError(f"{what} failed ({code}): {tail}")


def _in_chroot(root: Path, argv: list[str], what: str) -> None:
    """argv run chrooted in root with /proc and /dev, in a private mount namespace (both
    vanish from the root when it ends)."""
    script = 'mount -t proc proc "$0/proc" && mount --bind /dev "$0/dev" && exec chroot "$@"'
    _run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(root),
          str(root), *argv], what)  # fmt: skip


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


class VmImage:
    def __init__(self, cache: Path = LAB_ROOT / ".vm-image") -> None:
        self.cache = cache
        self.root = cache / "rootfs"
        self.kernel = cache / "vmlinuz"
        self.initrd = cache / "initrd.img"
        self.stamp = cache / "image.json"

    def disk(self, key: str) -> Path:
        return self.cache / f"disk-{key}.ext4"

    # -- what the cache holds

    def _stamp(self) -> dict[str, str] | None:
        try:
            data = json.loads(self.stamp.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def base_problem(self, stamp: dict[str, str]) -> str:
        """Why the cached base cannot be used ('' when it can)."""
        if not stamp.get("base"):
            return f"{self.stamp} does not say what the image holds"
        for path in (self.kernel, self.initrd, self.root / "sbin" / "init"):
            if not path.exists() or (path.is_file() and path.stat().st_size == 0):
                return f"{path} is missing"
        return ""

    def disk_problem(self, stamp: dict[str, str]) -> str:
        """Why the cached disk (pyswarm installed) cannot be booted ('' when it can)."""
        if not stamp.get("pyswarm"):
            return ""  # none was made yet: nothing broken, just to be made
        disk = self.disk(stamp["pyswarm"])
        if not disk.is_file():
            return f"{disk} is missing"
        if not (self.root / "opt" / "pyswarm" / ".venv" / "bin" / "pyswarm").exists():
            return "pyswarm is missing from its root"
        check = subprocess.run(["e2fsck", "-fn", str(disk)], capture_output=True, check=False)
        if check.returncode != 0:
            return f"e2fsck finds {disk.name} damaged"
        return ""

    # -- making it

    def ensure(self, checkout: Path, progress: Progress) -> Path:
        """The disk image to boot, built or brought up to date first; its path. One
        build at a time: a second lab coming up waits for the first one's."""
        self.cache.mkdir(parents=True, exist_ok=True)
        with open(self.cache / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return self._ensure(checkout, progress)
            finally:
                with contextlib.suppress(OSError):
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def _ensure(self, checkout: Path, progress: Progress) -> Path:
        deploy = checkout / "deploy"
        packages = sorted({*VM_PACKAGES, *self._install_packages(deploy)})
        base_key = _digest(SUITE.encode(), " ".join(packages).encode(), BASE_RECIPE.encode())
        stamp = self._stamp()
        if stamp is not None and (problem := self.base_problem(stamp)):
            progress(f"the cached VM image is broken ({problem}); rebuilding it")
            stamp = {}
        elif stamp is not None and (problem := self.disk_problem(stamp)):
            progress(f"the cached VM image is broken ({problem}); reinstalling pyswarm into it")
            stamp = {"base": stamp["base"]}
        if stamp is None or stamp.get("base") != base_key:
            progress(f"building the VM image from Debian {SUITE} packages (once; a few minutes)")
            self._build_base(packages)
            stamp = {"base": base_key}
            self._write_stamp(stamp)

        wheel = build_wheel(checkout, self.cache / "wheel")
        key = _digest(wheel_digest(wheel).encode(), *self._deploy_files(deploy))
        if stamp.get("pyswarm") == key and self.disk(key).is_file():
            progress("the cached VM image has this pyswarm already")
            return self.disk(key)
        progress("installing this checkout's pyswarm into the VM image (deploy/install.sh)")
        fill_wheelhouse(wheel, self.cache / "wheelhouse")
        self._install_pyswarm(deploy, wheel)
        disk = self._make_disk(key)
        self._write_stamp({"base": base_key, "pyswarm": key})
        return disk

    @staticmethod
    def _install_packages(deploy: Path) -> list[str]:
        result = subprocess.run(["bash", str(deploy / "install.sh"), "--print-packages"],
                                capture_output=True, text=True, check=False)  # fmt: skip
        if result.returncode != 0:
            raise LabError(f"deploy/install.sh --print-packages: {result.stderr.strip()}")
        return result.stdout.split()

    @staticmethod
    def _deploy_files(deploy: Path) -> list[bytes]:
        files = sorted(p for p in deploy.rglob("*") if p.is_file())
        return [p.relative_to(deploy).as_posix().encode() + b"\0" + p.read_bytes() for p in files]

    def _write_stamp(self, stamp: dict[str, str]) -> None:
        write_json(self.stamp, stamp, indent=None)

    def _build_base(self, packages: list[str]) -> None:
        self.cache.mkdir(parents=True, exist_ok=True)
        self.stamp.unlink(missing_ok=True)
        new = self.cache / "rootfs.new"
        shutil.rmtree(new, ignore_errors=True)
        debs = self.cache / "debs"  # kept: a rebuild downloads nothing again
        debs.mkdir(exist_ok=True)
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}",
              f"--cache-dir={debs}", SUITE, str(new), debian_mirror()],
             "debootstrap", log=self.cache / "debootstrap.log")  # fmt: skip
        kernels = sorted((new / "boot").glob("vmlinuz-*"))
        initrds = sorted((new / "boot").glob("initrd.img-*"))
        if not kernels or not initrds:
            raise LabError(f"debootstrap left no kernel or initrd in {new / 'boot'}")
        (new / "etc" / "fstab").write_text("/dev/vda / ext4 rw,discard 0 1\n")
        (new / "etc" / "machine-id").write_text("")  # each VM makes its own at first boot
        (new / "etc" / "hostname").write_text("pyswarm-vm\n")  # the lab names each at boot
        for unit in MASKED_UNITS:
            link = new / "etc" / "systemd" / "system" / unit
            link.unlink(missing_ok=True)
            link.symlink_to("/dev/null")
        conf = new / "etc" / "initramfs-tools" / "initramfs.conf"
        conf.write_text(conf.read_text().replace("MODULES=most", "MODULES=list"))
        modules = new / "etc" / "initramfs-tools" / "modules"
        modules.write_text("".join(f"{name}\n" for name in INITRAMFS_MODULES))
        _in_chroot(new, ["update-initramfs", "-u", "-k", "all"], "update-initramfs in the VM image")
        shutil.copyfile(kernels[-1], self.kernel)
        shutil.copyfile(initrds[-1], self.initrd)
        shutil.rmtree(self.root, ignore_errors=True)
        new.rename(self.root)

    def _install_pyswarm(self, deploy: Path, wheel: Path) -> None:
        """deploy/install.sh in a chroot of the root, offline, as on a real host; then the
        lab's own guest unit (its address from the kernel command line)."""
        staging = self.root / "tmp" / "pyswarm-install"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(deploy, staging / "deploy")
        shutil.copytree(self.cache / "wheelhouse", staging / "wheelhouse")
        shutil.copy(wheel, staging / "wheelhouse" / wheel.name)
        inside = "/tmp/pyswarm-install"
        try:
            _in_chroot(self.root, ["bash", f"{inside}/deploy/install.sh",
                                   "--wheel", f"{inside}/wheelhouse/{wheel.name}",
                                   "--wheelhouse", f"{inside}/wheelhouse"],
                       "deploy/install.sh in the VM image")  # fmt: skip
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        lab_files = deploy / "vm-lab"
        shutil.copy(lab_files / "pyswarm-lab-net", self.root / "usr/local/sbin/pyswarm-lab-net")
        (self.root / "usr/local/sbin/pyswarm-lab-net").chmod(0o755)
        shutil.copy(lab_files / "pyswarm-lab-net.service",
                    self.root / "etc/systemd/system/pyswarm-lab-net.service")  # fmt: skip
        _run(["systemctl", f"--root={self.root}", "enable", "pyswarm-lab-net.service"],
             "enabling pyswarm-lab-net in the VM image")  # fmt: skip

    def _make_disk(self, key: str) -> Path:
        used = subprocess.run(["du", "-sm", str(self.root)], capture_output=True, text=True,
                              check=False).stdout.split()  # fmt: skip
        size = int(used[0]) + DISK_HEADROOM_MIB if used else 6144
        disk = self.disk(key)
        tmp = disk.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        _run(["mkfs.ext4", "-q", "-F", "-L", "pyswarm", "-d", str(self.root), str(tmp),
              f"{size}M"], "mkfs.ext4 of the VM image")  # fmt: skip
        tmp.replace(disk)
        if not labs_with_vms():  # no VM boots from an older disk: drop the older ones
            for old in self.cache.glob("disk-*.ext4"):
                if old != disk:
                    old.unlink()
        return disk
