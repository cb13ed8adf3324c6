"""`service create --mount` and `service update --mount-add/--mount-rm` (docker's order:
removals by target, then additions, an addition at a mounted target replacing it)."""

from __future__ import annotations

import pytest

from pyswarm.cli.parse import CliInputError
from pyswarm.cli.service_mounts import apply_create_mounts, apply_mount_changes, print_mounts
from pyswarm.proto import types_pb2


def _targets(spec: types_pb2.ServiceSpec) -> list[tuple[str, str]]:
    return [(m.target, m.source) for m in spec.task.container.mounts]


def test_create_takes_repeated_mounts_and_refuses_a_second_at_one_target() -> None:
    spec = types_pb2.ServiceSpec()
    apply_create_mounts(spec, ["src=data,dst=/data", "type=tmpfs,dst=/tmp"])
    assert _targets(spec) == [("/data", "data"), ("/tmp", "")]
    with pytest.raises(CliInputError, match="Duplicate mount point: /data/") as caught:
        apply_create_mounts(spec, ["src=other,dst=/data/"])
    assert caught.value.field == "--mount"


def test_update_removes_by_target_then_adds_or_replaces() -> None:
    spec = types_pb2.ServiceSpec()
    apply_create_mounts(spec, ["src=data,dst=/data", "src=logs,dst=/logs", "src=old,dst=/cfg"])
    apply_mount_changes(spec, ["src=new,dst=/cfg", "type=tmpfs,dst=/scratch"], ["/logs/"])
    assert _targets(spec) == [("/data", "data"), ("/cfg", "new"), ("/scratch", "")]


def test_a_bad_mount_add_is_named_and_changes_nothing() -> None:
    spec = types_pb2.ServiceSpec()
    apply_create_mounts(spec, ["src=data,dst=/data"])
    with pytest.raises(CliInputError, match='for "--mount-add" flag: unexpected key') as caught:
        apply_mount_changes(spec, ["src=x1,dst=/x,colour=red"], ["/data"])
    assert caught.value.field == "--mount-add"
    assert _targets(spec) == [("/data", "data")]


def test_pretty_lists_mounts(capsys: pytest.CaptureFixture[str]) -> None:
    spec = types_pb2.ServiceSpec()
    apply_create_mounts(spec, ["src=data,dst=/data,ro"])
    print_mounts(spec.task.container)
    assert capsys.readouterr().out == (
        "Mounts:\n Target:\t/data\n  Source:\tdata\n  ReadOnly:\ttrue\n  Type:\t\tvolume\n"
    )
