"""The volume store: records on disk, and the local driver's mounts counted per user.

Layout (docker's): <volumes dir>/NAME/_data is the volume's content (its Mountpoint),
<volumes dir>/NAME/volume.pb its record (0600; the dirs are 0700 but _data, which
containers' users read). A volume with the type/device/o options has its filesystem
mounted on _data while at least one running container holds it, and unmounted when the
last one lets go, as docker's local driver does. Who holds what lives in memory and is
rebuilt from the container records when the agent starts (`restore`), so a restart
neither loses a count nor leaves a mount behind.

Blocking: call from a worker thread. One lock guards records, holders and mounts.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import stat
import threading
from collections.abc import Iterable
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from pyswarm.agent.runtime import host_mounts
from pyswarm.agent.runtime.mountinfo import mount_points
from pyswarm.agent.volumes.errors import NoSuchVolume, VolumeMountFailed
from pyswarm.common.errors import FailedPrecondition
from pyswarm.common.mounts import (
    LOCAL_DRIVER,
    validate_driver,
    validate_local_options,
    validate_volume_name,
)
from pyswarm.common.secure_files import ensure_private_dir, write_private_file
from pyswarm.proto import agent_pb2

log = logging.getLogger(__name__)

Volume = agent_pb2.Volume
RECORD = "volume.pb"
DATA = "_data"
DATA_MODE = 0o755  # docker's: the container's users read it; the parents keep others out
# docker marks the volumes it makes for a container (no name given) with this label;
# `volume prune` without --all removes only these.
ANONYMOUS_LABEL = "com.docker.volume.anonymous"


class VolumeStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.RLock()
        self._volumes: dict[str, Volume] = {}
        self._holders: dict[str, set[str]] = {}
        ensure_private_dir(root)
        for directory in sorted(root.iterdir()):
            record = directory / RECORD
            if directory.name.startswith(".") or not record.is_file():
                continue
            try:
                self._volumes[directory.name] = Volume.FromString(record.read_bytes())
            except Exception as err:  # a damaged record hides one volume, not all
                log.warning("volume %s: unreadable record: %s", directory.name, err)

    # ------------------------------------------------------------ records

    def data_dir(self, name: str) -> Path:
        return self.root / name / DATA

    def create(
        self,
        name: str = "",
        *,
        driver: str = "",
        options: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> Volume:
        """A new volume, or the existing one of that name (docker's create is idempotent);
        no name: a random 64-hex one. InvalidArgument names a bad name, driver or option."""
        options = dict(options or {})
        name = name or secrets.token_hex(32)
        validate_volume_name(name)
        validate_driver(driver)
        validate_local_options(options)
        with self._lock:
            existing = self._volumes.get(name)
            if existing is not None:
                return _copy(existing)
            directory = self.root / name
            ensure_private_dir(directory)
            data = directory / DATA
            data.mkdir(mode=DATA_MODE, exist_ok=True)
            os.chmod(data, DATA_MODE)
            created = Timestamp()
            created.GetCurrentTime()
            volume = Volume(
                name=name,
                driver=LOCAL_DRIVER,
                mountpoint=str(data),
                labels=labels or {},
                options=options,
                created_at=created,
                scope="local",
            )
            write_private_file(directory / RECORD, volume.SerializeToString())
            self._volumes[name] = volume
            return _copy(volume)

    def get(self, name: str) -> Volume:
        with self._lock:
            volume = self._volumes.get(name)
            if volume is None:
                raise NoSuchVolume(name)
            return _copy(volume)

    def find(self, name: str) -> Volume | None:
        with self._lock:
            volume = self._volumes.get(name)
            return None if volume is None else _copy(volume)

    def list(self) -> list[Volume]:
        with self._lock:
            return [_copy(v) for _, v in sorted(self._volumes.items())]

    def remove(self, name: str) -> None:
        """Forget the volume and delete its content. The caller has checked that no
        container uses it; a volume a running container holds is refused all the same."""
        with self._lock:
            if name not in self._volumes:
                raise NoSuchVolume(name)
            if self._holders.get(name):
                raise FailedPrecondition(f"remove {name}: volume is in use", field="volume")
            directory = self.root / name
            self._unmount(name)
            # Never delete through a mount: a bind of a host directory would go with it.
            if any(p.startswith(f"{directory}/") for p in mount_points()):
                raise FailedPrecondition(
                    f"remove {name}: its filesystem is still mounted", field="volume"
                )
            del self._volumes[name]
            aside = self.root / f".removing-{name}-{secrets.token_hex(4)}"
            os.rename(directory, aside)
        shutil.rmtree(aside, ignore_errors=True)

    # ------------------------------------------------------------ mounts

    def acquire(self, name: str, holder: str) -> Path:
        """`holder` (a starting container) uses the volume: its filesystem is mounted if
        it has one and is not mounted yet. Returns the directory to bind into the
        container, checked to be a real directory (never a symlink)."""
        with self._lock:
            volume = self._volumes.get(name)
            if volume is None:
                raise NoSuchVolume(name)
            data = self.data_dir(name)
            self._holders.setdefault(name, set()).add(holder)
            try:
                if needs_mount(volume) and str(data) not in mount_points():
                    self._mount(volume, data)
                if not stat.S_ISDIR(os.lstat(data).st_mode):
                    raise FailedPrecondition(f"volume {name}: {data} is not a directory")
            except BaseException:
                self._let_go(name, holder)
                raise
            return data

    def release(self, holder: str) -> None:
        """`holder` no longer runs: each volume it held is unmounted if it was the last."""
        with self._lock:
            for name in [n for n, users in self._holders.items() if holder in users]:
                self._let_go(name, holder)

    def holds(self, holder: str) -> bool:
        with self._lock:
            return any(holder in users for users in self._holders.values())

    def restore(self, holders: dict[str, set[str]]) -> None:
        """After a (re)start: who holds what (the running containers), and no mount left
        for a volume that nobody holds (what a crash or a host's reboot left)."""
        with self._lock:
            self._holders = {n: set(u) for n, u in holders.items() if n in self._volumes}
            for name in self._volumes:
                if not self._holders.get(name):
                    self._unmount(name)

    def unmount_all(self) -> None:
        """Teardown: every volume's filesystem unmounted (the content stays)."""
        with self._lock:
            self._holders.clear()
            for name in self._volumes:
                self._unmount(name)

    def _let_go(self, name: str, holder: str) -> None:
        users = self._holders.get(name, set())
        users.discard(holder)
        if not users:
            self._holders.pop(name, None)
            try:
                self._unmount(name)
            except OSError as err:
                log.warning("volume %s: unmount failed: %s", name, err)

    def _mount(self, volume: Volume, data: Path) -> None:
        options = volume.options
        try:
            host_mounts.mount_filesystem(
                options.get("device", ""), data, options.get("type", ""), options.get("o", "")
            )
        except OSError as err:
            reason = err.strerror or str(err)
            raise VolumeMountFailed(str(data), _redacted(reason, options.get("o", ""))) from err

    def _unmount(self, name: str) -> None:
        volume = self._volumes.get(name)
        data = self.data_dir(name)
        if volume is not None and needs_mount(volume) and str(data) in mount_points():
            host_mounts.unmount(data)

    # ------------------------------------------------------------ usage

    def size(self, name: str) -> int:
        """Bytes of the volume's files (each hard-linked file once), as docker's df."""
        return directory_size(self.data_dir(name))


def needs_mount(volume: Volume) -> bool:
    return bool(volume.options.get("type") or volume.options.get("device"))


def directory_size(path: Path) -> int:
    total = 0
    seen: set[tuple[int, int]] = set()
    for directory, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def holders_of(containers: Iterable[tuple[str, Iterable[str]]]) -> dict[str, set[str]]:
    """{volume: {container id}} from (container id, its volume names) pairs."""
    holders: dict[str, set[str]] = {}
    for cid, names in containers:
        for name in names:
            holders.setdefault(name, set()).add(cid)
    return holders


def _copy(volume: Volume) -> Volume:
    copy = Volume()
    copy.CopyFrom(volume)
    return copy


def _redacted(reason: str, mount_options: str) -> str:
    """A cifs password in `o` never reaches a message or a log."""
    for word in mount_options.split(","):
        if word.startswith("password="):
            reason = reason.replace(word, "password=********")
    return reason
