"""A new volume's first content: what the image holds at the mount's target, copied in
(docker's copy-up), unless the mount says volume-nocopy or the volume is not empty.

The source is a read-only view of the image; the path in it resolves as the container
would resolve it (secure_join), so an image's symlink cannot point the copy at the
host. Links are copied as links, never followed; owners, modes and times are kept, and
the volume's own directory takes the owner and mode of the image's directory.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from pyswarm.common.scoped_paths import secure_join


def is_empty(directory: Path) -> bool:
    with os.scandir(directory) as entries:
        return next(entries, None) is None


def has_content(image_root: Path, target: str) -> bool:
    """Whether the image has a non-empty directory at `target`."""
    source = Path(secure_join(str(image_root), target))
    try:
        return stat.S_ISDIR(os.lstat(source).st_mode) and not is_empty(source)
    except OSError:
        return False


def copy_up(image_root: Path, target: str, volume_dir: Path) -> bool:
    """Copy the image's directory at `target` into the empty `volume_dir`; whether
    anything was copied."""
    source = Path(secure_join(str(image_root), target))
    try:
        st = os.lstat(source)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode) or not is_empty(volume_dir):
        return False
    _copy_tree(source, volume_dir)
    os.chown(volume_dir, st.st_uid, st.st_gid)
    os.chmod(volume_dir, stat.S_IMODE(st.st_mode))
    return True


def _copy_tree(source: Path, destination: Path) -> None:
    for entry in os.scandir(source):
        src = Path(entry.path)
        dst = destination / entry.name
        st = entry.stat(follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            dst.mkdir()
            _copy_tree(src, dst)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISREG(mode):
            shutil.copyfile(src, dst, follow_symlinks=False)
        elif stat.S_ISFIFO(mode):
            os.mkfifo(dst)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(dst, mode, st.st_rdev)
        else:
            continue  # sockets mean nothing in a copy
        os.lchown(dst, st.st_uid, st.st_gid)
        if not stat.S_ISLNK(mode):
            os.chmod(dst, stat.S_IMODE(mode))
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
