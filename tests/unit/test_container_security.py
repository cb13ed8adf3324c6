"""docker's security flags: the CLI's parsing and the agent's capability arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyswarm.agent.engine import hardening
from pyswarm.agent.engine.errors import BadSpec
from pyswarm.agent.runtime.container.capabilities import DEFAULT_CAPABILITIES
from pyswarm.cli.container_security import apply_security_opts, parse_device
from pyswarm.cli.parse import CliInputError
from pyswarm.proto import runtime_pb2, types_pb2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/dev/fuse", ("/dev/fuse", "/dev/fuse", "rwm")),
        ("/dev/fuse:r", ("/dev/fuse", "/dev/fuse", "r")),
        ("/dev/sdc:/dev/xvdc", ("/dev/sdc", "/dev/xvdc", "rwm")),
        ("/dev/sdc:/dev/xvdc:rw", ("/dev/sdc", "/dev/xvdc", "rw")),
    ],
)
def test_parse_device(text: str, expected: tuple[str, str, str]) -> None:
    mapping = parse_device(text)
    assert (mapping.path_on_host, mapping.path_in_container, mapping.permissions) == expected


@pytest.mark.parametrize("text", ["", "/dev/a:/b:rwx", "/dev/a:q", "dev/a", "/a:/b:r:x"])
def test_parse_device_refuses_bad_syntax(text: str) -> None:
    with pytest.raises(CliInputError, match="--device"):
        parse_device(text)


def test_security_opts(tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    spec = types_pb2.ContainerSpec()
    apply_security_opts(spec, [f"seccomp={profile}", "no-new-privileges"])
    assert spec.seccomp_profile == profile.read_text()
    assert spec.no_new_privileges
    apply_security_opts(spec, ["seccomp=unconfined", "no-new-privileges=false"])
    assert (spec.seccomp_profile, spec.no_new_privileges) == ("unconfined", False)


@pytest.mark.parametrize(
    ("option", "named"),
    [
        ("seccomp=/nonexistent/p.json", "seccomp=/nonexistent/p.json"),
        ("apparmor=unconfined", "apparmor=unconfined"),
        ("no-new-privileges=maybe", "no-new-privileges=maybe"),
        ("label=disable", "label=disable"),
    ],
)
def test_bad_security_opts_are_named(option: str, named: str) -> None:
    spec = types_pb2.ContainerSpec()
    with pytest.raises(CliInputError, match=named):
        apply_security_opts(spec, [option])
    assert spec == types_pb2.ContainerSpec()


def _caps(add: list[str], drop: list[str]) -> list[str]:
    return hardening.capabilities(types_pb2.ContainerSpec(capability_add=add, capability_drop=drop))


def test_default_capabilities_and_tweaks() -> None:
    assert _caps([], []) == list(DEFAULT_CAPABILITIES)
    tweaked = _caps(["net_admin", "CAP_SYS_TIME"], ["NET_RAW", "cap_mknod"])
    assert "CAP_NET_ADMIN" in tweaked and "CAP_SYS_TIME" in tweaked
    assert "CAP_NET_RAW" not in tweaked and "CAP_MKNOD" not in tweaked
    assert _caps(["CHOWN"], ["all"]) == ["CAP_CHOWN"]
    everything = _caps(["ALL"], ["SYS_ADMIN"])
    assert "CAP_SYS_ADMIN" not in everything and "CAP_SYS_MODULE" in everything


@pytest.mark.parametrize(
    ("add", "drop", "named"),
    [(["BOGUS"], [], "--cap-add BOGUS"), ([], ["cap_nope"], "--cap-drop cap_nope")],
)
def test_unknown_capability_is_named(add: list[str], drop: list[str], named: str) -> None:
    with pytest.raises(BadSpec, match=named):
        _caps(add, drop)


def test_privileged_lifts_masks_and_allows_every_device() -> None:
    runtime = runtime_pb2.RuntimeSpec()
    hardening.apply_to_runtime(types_pb2.ContainerSpec(), runtime)
    assert "/proc/kcore" in runtime.masked_paths and "/proc/sys" in runtime.readonly_paths
    assert not runtime.privileged and not runtime.devices
    hardening.apply_to_runtime(types_pb2.ContainerSpec(privileged=True), runtime)
    assert not runtime.masked_paths and not runtime.readonly_paths
    assert runtime.privileged
    assert "/dev/null" not in {d.path for d in runtime.devices}  # made by rootfs already
    assert [
        r.v1_line() for r in hardening.device_rules(types_pb2.ContainerSpec(privileged=True))
    ] == ["a *:* rwm"]


def test_device_of_a_file_is_refused_naming_it() -> None:
    spec = types_pb2.ContainerSpec(devices=[types_pb2.DeviceMapping(path_on_host="/etc/passwd")])
    with pytest.raises(BadSpec, match="--device /etc/passwd: not a device"):
        hardening.validate(spec)
