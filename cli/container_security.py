"""docker's security flags -> ContainerSpec: --cap-add, --cap-drop, --privileged,
--security-opt, --device. Kept apart from `run` so `service create` can reuse them.

Capability names are checked by the agent (it knows the kernel's); what only the
CLI can see (a seccomp profile file, the flag syntaxes) is checked here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyswarm.cli.parse import CliInputError
from pyswarm.proto import types_pb2

UNCONFINED = "unconfined"
_PERMISSIONS = frozenset("rwm")


def _is_permissions(text: str) -> bool:
    return bool(text) and set(text) <= _PERMISSIONS and len(set(text)) == len(text)


def parse_device(text: str) -> types_pb2.DeviceMapping:
    """`HOST[:CONTAINER][:PERMISSIONS]` (docker's --device), permissions a subset of rwm."""
    parts = text.split(":")
    flag = f"--device {text}"
    if len(parts) > 3 or not parts[0]:
        raise CliInputError(f"{flag}: use HOST[:CONTAINER][:rwm]", field="--device")
    host, container, permissions = parts[0], "", "rwm"
    if len(parts) == 2:
        if parts[1].startswith("/"):
            container = parts[1]
        else:
            permissions = parts[1]
    elif len(parts) == 3:
        container, permissions = parts[1], parts[2]
    if not _is_permissions(permissions):
        raise CliInputError(
            f"{flag}: invalid permissions {permissions!r} (a subset of rwm)", field="--device"
        )
    for path in (host, container):
        if path and not path.startswith("/"):
            raise CliInputError(f"{flag}: {path!r} is not an absolute path", field="--device")
    return types_pb2.DeviceMapping(
        path_on_host=host, path_in_container=container or host, permissions=permissions
    )


def _seccomp_profile(value: str) -> str:
    """ "unconfined", or the text of a profile file (the agent parses it)."""
    if value == UNCONFINED:
        return UNCONFINED
    if not value:
        raise CliInputError("--security-opt seccomp= needs a profile file", field="--security-opt")
    try:
        text = Path(value).read_text()
    except OSError as err:
        raise CliInputError(
            f"--security-opt seccomp={value}: cannot read the profile: {err.strerror}",
            field="--security-opt",
        ) from None
    if not text.strip():
        raise CliInputError(
            f"--security-opt seccomp={value}: the profile is empty", field="--security-opt"
        )
    return text


def _flag_bool(value: str, option: str) -> bool:
    lowered = value.lower()
    if lowered in ("", "true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise CliInputError(
        f"--security-opt {option}: invalid value {value!r} (true or false)", field="--security-opt"
    )


def apply_security_opts(spec: types_pb2.ContainerSpec, options: list[str]) -> None:
    """--security-opt: seccomp=unconfined|FILE.json, no-new-privileges[=true|false]."""
    for option in options:
        key, sep, value = option.partition("=")
        if key == "seccomp" and sep:
            spec.seccomp_profile = _seccomp_profile(value)
        elif key == "no-new-privileges":
            spec.no_new_privileges = _flag_bool(value, option)
        else:
            raise CliInputError(
                f"--security-opt {option}: unknown option (seccomp=PROFILE, no-new-privileges)",
                field="--security-opt",
            )


def apply_security_flags(
    spec: types_pb2.ContainerSpec,
    *,
    cap_add: list[str],
    cap_drop: list[str],
    privileged: bool,
    security_opt: list[str],
    device: list[str],
) -> None:
    """Put the security flags into `spec` (docker's meanings)."""
    for flag, names in (("--cap-add", cap_add), ("--cap-drop", cap_drop)):
        for name in names:
            if not name.strip():
                raise CliInputError(f"{flag}: empty capability name", field=flag)
    spec.capability_add.extend(name.strip() for name in cap_add)
    spec.capability_drop.extend(name.strip() for name in cap_drop)
    spec.privileged = privileged
    apply_security_opts(spec, security_opt)
    spec.devices.extend(parse_device(text) for text in device)


def security_dict(spec: types_pb2.ContainerSpec) -> dict[str, Any]:
    """docker inspect's HostConfig security fields (a profile's text is not repeated)."""
    options = []
    if spec.seccomp_profile:
        custom = spec.seccomp_profile != UNCONFINED
        options.append(f"seccomp={'<custom profile>' if custom else UNCONFINED}")
    if spec.no_new_privileges:
        options.append("no-new-privileges")
    return {
        "CapAdd": list(spec.capability_add) or None,
        "CapDrop": list(spec.capability_drop) or None,
        "Privileged": spec.privileged,
        "SecurityOpt": options or None,
        "Devices": [
            {
                "PathOnHost": d.path_on_host,
                "PathInContainer": d.path_in_container,
                "CgroupPermissions": d.permissions,
            }
            for d in spec.devices
        ],
    }
