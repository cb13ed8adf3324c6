"""docker's mount syntaxes, parsed once for `run` and `service` alike, and the checks a
mount must pass wherever it arrives (the CLI, the manager's API, the agent).

`--mount` takes docker's csv: `type=volume|bind|tmpfs,src=..,dst=..,readonly,
volume-opt=K=V,volume-label=K=V,volume-nocopy,volume-driver=..,tmpfs-size=..,
tmpfs-mode=..,bind-propagation=..,bind-nonrecursive`; `-v` takes
`[SOURCE:]TARGET[:MODE]`, where SOURCE is a host path (a bind mount, created when
missing) or a volume name, and no SOURCE means an anonymous volume.
"""

from __future__ import annotations

import csv
import os
import re

from pyswarm.common.byte_sizes import parse_size
from pyswarm.common.errors import InvalidArgument
from pyswarm.proto import types_pb2

Mount = types_pb2.Mount
# docker's local volume names: at least two characters, no path separators.
VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
PROPAGATIONS = ("rprivate", "private", "rshared", "shared", "rslave", "slave")
LOCAL_DRIVER = "local"
# docker's local driver: the options it knows, and which need which.
LOCAL_OPTIONS = ("type", "device", "o")
_NEEDS = {"device": ("type",), "type": ("device",), "o": ("device", "type")}
TYPE_NAMES = {Mount.BIND: "bind", Mount.VOLUME: "volume", Mount.TMPFS: "tmpfs"}
_TYPES = {name: kind for kind, name in TYPE_NAMES.items()}
_FALSE_TRUE = {"0": False, "false": False, "1": True, "true": True}
_VOLUME_MODES = ("ro", "rw", "nocopy", *PROPAGATIONS)


class MountError(InvalidArgument):
    """A mount the user asked for cannot be made as given; the message says why."""


# ------------------------------------------------------------------ --mount csv


def parse_mount(text: str, flag: str = "--mount") -> Mount:
    """One `--mount` value; MountError naming `flag` and the key at fault."""

    def bad(why: str) -> MountError:
        return MountError(f'invalid argument "{text}" for "{flag}" flag: {why}', field=flag)

    try:
        fields = next(csv.reader([text]), [])
    except csv.Error as err:
        raise bad(str(err)) from None
    mount = Mount(type=Mount.VOLUME)  # docker's default type
    given: set[str] = set()  # the volume-*, bind-* and tmpfs-* keys, for the mix check
    for item in fields:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            if key in ("readonly", "ro"):
                mount.read_only = True
            elif key == "volume-nocopy":
                mount.volume_nocopy = True
            elif key == "bind-nonrecursive":
                mount.bind_nonrecursive = True
            else:
                raise bad(f"invalid field '{item}' must be a key=value pair")
            given.add(key)
            continue
        if key == "type":
            if value.lower() not in _TYPES:
                raise bad(f"invalid mount type '{value}': volume, bind or tmpfs")
            mount.type = _TYPES[value.lower()]
        elif key in ("source", "src"):
            mount.source = (
                os.path.abspath(value) if value in (".",) or value.startswith("./") else value
            )
        elif key in ("target", "dst", "destination"):
            mount.target = value
        elif key in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive"):
            if value.lower() not in _FALSE_TRUE:
                raise bad(f"invalid value for {key}: {value}")
            flag_value = _FALSE_TRUE[value.lower()]
            if key in ("readonly", "ro"):
                mount.read_only = flag_value
            elif key == "volume-nocopy":
                mount.volume_nocopy = flag_value
            else:
                mount.bind_nonrecursive = flag_value
        elif key == "bind-propagation":
            mount.bind_propagation = value.lower()
        elif key == "volume-driver":
            mount.volume_driver = value
        elif key in ("volume-opt", "volume-label"):
            name, _, setting = value.partition("=")
            if name:
                target = mount.volume_options if key == "volume-opt" else mount.volume_labels
                target[name] = setting
        elif key == "tmpfs-size":
            size = parse_size(value, binary=True)
            if size is None:
                raise bad(f"invalid value for {key}: {value}")
            mount.tmpfs_size_bytes = size
        elif key == "tmpfs-mode":
            try:
                mount.tmpfs_mode = int(value, 8)
            except ValueError:
                raise bad(f"invalid value for {key}: {value}") from None
        elif key == "consistency":
            pass  # docker accepts and ignores it on Linux
        else:
            raise bad(f"unexpected key '{key}' in '{item}'")
        given.add(key)
    if not mount.target:
        raise bad("target is required")
    for prefix, kind in (("volume-", Mount.VOLUME), ("bind-", Mount.BIND), ("tmpfs-", Mount.TMPFS)):
        if mount.type != kind and any(k.startswith(prefix) for k in given):
            raise bad(f"cannot mix '{prefix}*' options with mount type '{TYPE_NAMES[mount.type]}'")
    try:
        validate_mount(mount)
    except MountError as err:
        raise bad(err.message) from None
    return mount


# ------------------------------------------------------------------ -v


def parse_volume(text: str, flag: str = "--volume") -> Mount:
    """One `-v [SOURCE:]TARGET[:MODE]`: a bind mount (SOURCE a path), a named volume
    (SOURCE a name) or an anonymous one (no SOURCE)."""

    def bad(why: str = "") -> MountError:
        tail = f": {why}" if why else ""
        return MountError(f"invalid volume specification: '{text}'{tail}", field=flag)

    parts = text.split(":")
    mode = ""
    if len(parts) == 3 or (len(parts) == 2 and not parts[1].startswith("/")):
        mode = parts.pop()
    if len(parts) > 2 or not all(parts):
        raise bad()
    modes = [m for m in mode.split(",") if m] if mode else []
    for word in modes:
        if word not in _VOLUME_MODES:
            raise bad(f"invalid mode: {mode}")
    target = parts[-1]
    source = parts[0] if len(parts) == 2 else ""
    if source == "." or source.startswith(("./", "../")):
        source = os.path.abspath(source)
    mount = Mount(target=target, read_only="ro" in modes)
    if source.startswith("/"):
        mount.type = Mount.BIND
        mount.source = os.path.normpath(source)
        mount.bind_create_source = True  # -v makes a missing host directory, as docker
        mount.bind_propagation = next((m for m in modes if m in PROPAGATIONS), "")
        if "nocopy" in modes:
            raise bad("invalid mode: nocopy is for volumes")
    else:
        mount.type = Mount.VOLUME
        mount.source = source
        mount.volume_nocopy = "nocopy" in modes
        if any(m in PROPAGATIONS for m in modes):
            raise bad(f"invalid mode: {mode}: propagation is for bind mounts")
    try:
        validate_mount(mount)
    except MountError as err:
        raise bad(err.message) from None
    return mount


# ------------------------------------------------------------------ checks


def validate_volume_name(name: str, field: str = "name") -> None:
    if not VOLUME_NAME.match(name):
        raise MountError(
            f'"{name}" includes invalid characters for a local volume name, only'
            ' "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host'
            " directory, use absolute path",
            field=field,
        )


def validate_local_options(options: dict[str, str], field: str = "opt") -> None:
    """docker's local driver options: type, device and o, each with what it needs."""
    for key in options:
        if key not in LOCAL_OPTIONS:
            raise MountError(
                f'invalid option: "{key}" (the local driver takes type, device and o)',
                field=field,
            )
    for key, needed in _NEEDS.items():
        if key in options:
            for other in needed:
                if other not in options:
                    raise MountError(f'missing required option: "{other}"', field=field)


def validate_driver(driver: str, field: str = "driver") -> None:
    if driver not in ("", LOCAL_DRIVER):
        raise MountError(
            f'error looking up volume plugin {driver}: plugin "{driver}" not found'
            " (only the local driver exists)",
            field=field,
        )


def validate_mount(mount: Mount, field: str = "mount") -> None:
    """What any mount must be, in docker's words ("invalid mount config for type ...")."""
    if mount.type not in TYPE_NAMES:
        raise MountError(f"invalid mount config: mount type {mount.type} unknown", field=field)
    kind = TYPE_NAMES[mount.type]

    def bad(why: str, part: str) -> MountError:
        return MountError(f'invalid mount config for type "{kind}": {why}', field=f"{field}.{part}")

    target = mount.target
    if not target.startswith("/"):
        raise bad(f"invalid mount path: '{target}' mount path must be absolute", "target")
    if os.path.normpath(target) == "/":
        raise bad("invalid specification: destination can't be '/'", "target")
    if ".." in target.split("/"):
        raise bad(f"invalid mount path: '{target}' must not contain '..'", "target")
    has_volume = bool(
        mount.volume_driver or mount.volume_options or mount.volume_labels or mount.volume_nocopy
    )
    has_bind = bool(mount.bind_propagation or mount.bind_create_source or mount.bind_nonrecursive)
    has_tmpfs = bool(mount.tmpfs_size_bytes or mount.tmpfs_mode)
    if mount.type != Mount.VOLUME and has_volume:
        raise bad("field VolumeOptions must not be specified", "volume_options")
    if mount.type != Mount.BIND and has_bind:
        raise bad("field BindOptions must not be specified", "bind_options")
    if mount.type != Mount.TMPFS and has_tmpfs:
        raise bad("field TmpfsOptions must not be specified", "tmpfs_options")
    if mount.type == Mount.BIND:
        if not mount.source:
            raise bad("field Source must not be empty", "source")
        if not mount.source.startswith("/"):
            raise bad(f"invalid mount path: '{mount.source}' mount path must be absolute", "source")
        if mount.bind_propagation and mount.bind_propagation not in PROPAGATIONS:
            raise bad(f"invalid propagation mode: {mount.bind_propagation}", "bind_propagation")
    elif mount.type == Mount.VOLUME:
        if mount.source:
            validate_volume_name(mount.source, f"{field}.source")
        validate_driver(mount.volume_driver, f"{field}.volume_driver")
        validate_local_options(dict(mount.volume_options), f"{field}.volume_options")
    else:
        if mount.source:
            raise bad("field Source must not be specified", "source")
        if mount.tmpfs_size_bytes < 0:
            raise bad("tmpfs-size must not be negative", "tmpfs_size_bytes")
        if mount.tmpfs_mode > 0o7777:
            raise bad(f"invalid tmpfs-mode {mount.tmpfs_mode:o}", "tmpfs_mode")


def validate_mounts(mounts: list[Mount], field: str = "mounts") -> None:
    """Each mount valid, and no two at one target (docker's "Duplicate mount point")."""
    seen: set[str] = set()
    for mount in mounts:
        validate_mount(mount, field)
        target = os.path.normpath(mount.target)
        if target in seen:
            raise MountError(f"Duplicate mount point: {target}", field=f"{field}.target")
        seen.add(target)
