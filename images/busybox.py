"""A busybox rootfs tarball from Debian's busybox-static, so tests and the demo need no network.

The tar holds /bin/busybox, one relative symlink per applet where
`busybox --list-full` places it, minimal /etc files (root and nobody), /tmp
(1777), /root, /home, mount points for /proc, /sys and /dev, and
/var/www/index.html for `busybox httpd`. Every member carries the binary's mtime
and root ownership, so the same binary gives the same tar bytes (and image id).
"""

from __future__ import annotations

import io
import posixpath
import subprocess
import tarfile
from pathlib import Path

from pyswarm.images.errors import ImageError

INDEX_HTML = b"hello from pyswarm\n"

_DIRS = {
    "bin": 0o755, "sbin": 0o755, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
    "etc": 0o755, "tmp": 0o1777, "root": 0o700, "home": 0o755, "var": 0o755,
    "var/www": 0o755, "proc": 0o555, "sys": 0o555, "dev": 0o755,
}  # fmt: skip

_FILES = {
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
    "etc/hosts": b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "etc/hostname": b"localhost\n",
    "etc/resolv.conf": b"",
    "var/www/index.html": INDEX_HTML,
}


def applet_paths(busybox: Path) -> list[str]:
    """Where each applet lives, relative to /, as `busybox --list-full` names them."""
    try:
        result = subprocess.run(
            [str(busybox), "--list-full"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ImageError(f"cannot list busybox applets with {busybox}: {exc}") from None
    return sorted({line.strip().lstrip("/") for line in result.stdout.splitlines() if line})


def write_busybox_rootfs(tar_path: Path, busybox: Path = Path("/bin/busybox")) -> None:
    """Write a busybox rootfs tar (uncompressed) to `tar_path`."""
    mtime = int(busybox.stat().st_mtime)
    applets = applet_paths(busybox)

    def info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
        member = tarfile.TarInfo(name)
        member.type, member.mode, member.size, member.mtime = kind, mode, size, mtime
        member.uname = member.gname = "root"
        return member

    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info(".", tarfile.DIRTYPE, 0o755))
        dirs = dict(_DIRS)
        for applet in applets:  # applets may live in dirs beyond the usual ones
            parent = posixpath.dirname(applet)
            while parent and parent not in dirs:
                dirs[parent] = 0o755
                parent = posixpath.dirname(parent)
        for name in sorted(dirs):
            tar.addfile(info(name, tarfile.DIRTYPE, dirs[name]))
        with open(busybox, "rb") as binary:
            size = busybox.stat().st_size
            tar.addfile(info("bin/busybox", tarfile.REGTYPE, 0o755, size), binary)
        for applet in applets:
            if applet == "bin/busybox":
                continue
            link = info(applet, tarfile.SYMTYPE, 0o777)
            link.linkname = posixpath.relpath("bin/busybox", posixpath.dirname(applet) or ".")
            tar.addfile(link)
        for name, data in sorted(_FILES.items()):
            tar.addfile(info(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
