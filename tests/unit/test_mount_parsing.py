"""docker's mount syntaxes (common/mounts.py): --mount's csv, -v, and the checks every
mount passes in the CLI, the manager and the agent."""

from __future__ import annotations

import pytest

from pyswarm.common.mounts import (
    MountError,
    parse_mount,
    parse_volume,
    validate_local_options,
    validate_mounts,
)
from pyswarm.proto import types_pb2

Mount = types_pb2.Mount


def test_volume_is_the_default_type_and_every_key_has_its_aliases() -> None:
    mount = parse_mount("src=data,dst=/data")
    assert (mount.type, mount.source, mount.target) == (Mount.VOLUME, "data", "/data")
    assert parse_mount("source=data,target=/d").target == "/d"
    assert parse_mount("source=data,destination=/d,ro").read_only
    assert parse_mount("src=data,dst=/d,readonly=true").read_only
    assert not parse_mount("src=data,dst=/d,readonly=0").read_only
    assert parse_mount("type=volume,dst=/anon").source == ""


def test_volume_options_labels_and_nocopy() -> None:
    mount = parse_mount(
        "type=volume,src=cache,dst=/c,volume-driver=local,volume-opt=type=tmpfs,"
        "volume-opt=device=tmpfs,volume-opt=o=size=1m,volume-label=tier=fast,volume-nocopy"
    )
    assert dict(mount.volume_options) == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    assert dict(mount.volume_labels) == {"tier": "fast"}
    assert mount.volume_nocopy and mount.volume_driver == "local"


def test_csv_quoting_keeps_commas_inside_a_field() -> None:
    mount = parse_mount(
        "type=volume,src=v1,dst=/v,volume-opt=type=tmpfs,volume-opt=device=tmpfs,"
        '"volume-opt=o=size=1m,uid=1000"'
    )
    assert mount.volume_options["o"] == "size=1m,uid=1000"


def test_tmpfs_size_and_mode() -> None:
    mount = parse_mount("type=tmpfs,dst=/scratch,tmpfs-size=64m,tmpfs-mode=1770")
    assert (mount.type, mount.tmpfs_size_bytes, mount.tmpfs_mode) == (
        Mount.TMPFS,
        64 * 1024 * 1024,
        0o1770,
    )


def test_bind_propagation_and_no_creation_of_the_source() -> None:
    mount = parse_mount("type=bind,src=/srv,dst=/srv,bind-propagation=rslave")
    assert (mount.type, mount.bind_propagation, mount.bind_create_source) == (
        Mount.BIND,
        "rslave",
        False,
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("type=nfs,dst=/x", "invalid mount type 'nfs'"),
        ("src=data", "target is required"),
        ("src=data,dst=rel", "mount path must be absolute"),
        ("src=data,dst=/", "destination can't be '/'"),
        ("type=bind,dst=/x", "field Source must not be empty"),
        ("type=bind,src=rel,dst=/x", "'rel' mount path must be absolute"),
        ("type=tmpfs,src=x1,dst=/x", "field Source must not be specified"),
        ("type=bind,src=/a,dst=/x,volume-nocopy", "cannot mix 'volume-*'"),
        ("type=volume,src=v1,dst=/x,tmpfs-size=1m", "cannot mix 'tmpfs-*'"),
        ("type=tmpfs,dst=/x,bind-propagation=shared", "cannot mix 'bind-*'"),
        ("type=bind,src=/a,dst=/x,bind-propagation=sideways", "invalid propagation mode"),
        ("src=v1,dst=/x,colour=blue", "unexpected key 'colour'"),
        ("src=v1,dst=/x,shiny", "invalid field 'shiny' must be a key=value pair"),
        ("src=v1,dst=/x,ro=maybe", "invalid value for ro: maybe"),
        ("type=tmpfs,dst=/x,tmpfs-size=lots", "invalid value for tmpfs-size"),
        ("type=tmpfs,dst=/x,tmpfs-mode=999", "invalid value for tmpfs-mode"),
        ("src=a/b,dst=/x", "invalid characters for a local volume name"),
        ("src=v1,dst=/x,volume-opt=size=1g", 'invalid option: "size"'),
        ("src=v1,dst=/x,volume-opt=type=tmpfs", 'missing required option: "device"'),
        ("src=v1,dst=/x,volume-driver=nfs", 'plugin "nfs" not found'),
    ],
)
def test_bad_mounts_are_named_in_one_line(text: str, words: str) -> None:
    with pytest.raises(MountError) as caught:
        parse_mount(text, "--mount-add")
    message = caught.value.message
    assert message.startswith(f'invalid argument "{text}" for "--mount-add" flag: ')
    assert words in message and "\n" not in message
    assert caught.value.field == "--mount-add"


def test_dash_v_forms() -> None:
    bind = parse_volume("/srv/data/:/data:ro")
    assert (bind.type, bind.source, bind.read_only, bind.bind_create_source) == (
        Mount.BIND,
        "/srv/data",
        True,
        True,
    )
    named = parse_volume("data:/data:nocopy")
    assert (named.type, named.source, named.volume_nocopy) == (Mount.VOLUME, "data", True)
    anonymous = parse_volume("/cache")
    assert (anonymous.type, anonymous.source, anonymous.target) == (Mount.VOLUME, "", "/cache")
    assert parse_volume("/cache:ro").read_only
    assert parse_volume("/a:/b:rshared").bind_propagation == "rshared"


@pytest.mark.parametrize("text", ["data", "x/y:/d", "/a:/b:sideways", "data:/d:rshared", ":/d"])
def test_bad_dash_v(text: str) -> None:
    with pytest.raises(MountError, match="invalid volume specification"):
        parse_volume(text)


def test_duplicate_targets_are_refused() -> None:
    mounts = [parse_mount("src=one,dst=/d"), parse_mount("type=tmpfs,dst=/d/")]
    with pytest.raises(MountError, match="Duplicate mount point: /d") as caught:
        validate_mounts(mounts, "task.container.mounts")
    assert caught.value.field == "task.container.mounts.target"


def test_unknown_type_number_is_named() -> None:
    with pytest.raises(MountError, match="mount type 7 unknown") as caught:
        validate_mounts([Mount(type=7, target="/x")], "task.container.mounts")  # type: ignore[arg-type]
    assert caught.value.field == "task.container.mounts"


def test_local_driver_options() -> None:
    validate_local_options({"type": "tmpfs", "device": "tmpfs", "o": "size=10m"})
    validate_local_options({})
    with pytest.raises(MountError, match='missing required option: "type"'):
        validate_local_options({"device": "/dev/sdb1"})
    with pytest.raises(MountError, match='invalid option: "colour"'):
        validate_local_options({"colour": "blue"})


@pytest.mark.parametrize(
    ("mount", "field", "words"),
    [
        (Mount(type=Mount.VOLUME, source="data", target="data"), "mounts.target", "absolute"),
        (Mount(type=9, target="/x"), "mounts", "mount type 9 unknown"),  # type: ignore[arg-type]
        (
            Mount(type=Mount.VOLUME, source="data", target="/d", volume_options={"colour": "x"}),
            "mounts.volume_options",
            'invalid option: "colour"',
        ),
        (Mount(type=Mount.BIND, source="rel", target="/d"), "mounts.source", "absolute"),
    ],
)
def test_the_manager_refuses_bad_mounts_naming_the_field(
    mount: Mount, field: str, words: str
) -> None:
    from pyswarm.common.errors import ErrorKind
    from pyswarm.manager.controlapi.validation import validate_service_spec

    spec = types_pb2.ServiceSpec()
    spec.annotations.name = "stateful"
    spec.task.container.image = "busybox"
    spec.replicated.replicas = 1
    spec.task.container.mounts.append(mount)
    with pytest.raises(MountError) as caught:
        validate_service_spec(spec)
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT
    assert caught.value.field == f"task.container.{field}" and words in caught.value.message
