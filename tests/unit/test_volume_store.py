"""The volume store's records and filters, without mounts (agent/volumes/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyswarm.agent.volumes import ANONYMOUS_LABEL, BadVolumeFilter, NoSuchVolume, VolumeStore
from pyswarm.agent.volumes.filters import PRUNE_KEYS, VolumeFilter
from pyswarm.common.mounts import MountError
from pyswarm.proto import agent_pb2


def test_records_are_private_and_survive_a_new_store(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path / "volumes")
    made = store.create("data", options={"type": "tmpfs", "device": "tmpfs"}, labels={"a": "b"})
    assert made.mountpoint == str(tmp_path / "volumes" / "data" / "_data")
    assert (made.driver, made.scope) == ("local", "local")
    assert (tmp_path / "volumes" / "data" / "volume.pb").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "volumes").stat().st_mode & 0o777 == 0o700
    again = VolumeStore(tmp_path / "volumes").get("data")
    assert again == made and dict(again.options) == {"type": "tmpfs", "device": "tmpfs"}


def test_create_is_idempotent_and_a_nameless_volume_gets_64_hex(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path)
    first = store.create("same", labels={"x": "1"})
    assert store.create("same", labels={"x": "2"}) == first
    anonymous = store.create(labels={ANONYMOUS_LABEL: ""})
    assert len(anonymous.name) == 64 and int(anonymous.name, 16) >= 0
    assert [v.name for v in store.list()] == sorted([first.name, anonymous.name])


def test_bad_input_changes_nothing(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path)
    for kwargs in ({"options": {"size": "1g"}}, {"driver": "nfs"}, {"options": {"o": "x"}}):
        with pytest.raises(MountError):
            store.create("v1", **kwargs)
    with pytest.raises(MountError, match="invalid characters"):
        store.create("../x")
    assert store.list() == [] and not (tmp_path / "v1").exists()


def test_remove_deletes_content_and_record(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path)
    store.create("gone")
    (store.data_dir("gone") / "f").write_text("x" * 10)
    assert store.size("gone") == 10
    store.remove("gone")
    assert not (tmp_path / "gone").exists()
    with pytest.raises(NoSuchVolume, match="get gone: no such volume"):
        store.get("gone")
    assert VolumeStore(tmp_path).list() == []


def test_holders_count_users_and_a_held_volume_is_not_removed(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path)
    store.create("shared")
    store.restore({"shared": {"c1"}, "unknown": {"c9"}})
    assert store.acquire("shared", "c2") == store.data_dir("shared")
    store.release("c1")
    assert store.holds("c2") and not store.holds("c1")
    with pytest.raises(Exception, match="volume is in use"):
        store.remove("shared")
    store.release("c2")
    store.remove("shared")


def _volume(name: str, **labels: str) -> agent_pb2.Volume:
    return agent_pb2.Volume(name=name, driver="local", labels=labels)


def test_filters_as_docker_combines_them() -> None:
    web = _volume("web-data", tier="front")
    db = _volume("db-data", tier="back", backup="")
    names = VolumeFilter.parse(["name=web", "name=db"])
    assert names.matches(web, in_use=True) and names.matches(db, in_use=True)
    both = VolumeFilter.parse(["name=data", "label=tier=back"])
    assert both.matches(db, in_use=False) and not both.matches(web, in_use=False)
    assert VolumeFilter.parse(["label=backup"]).matches(db, in_use=False)
    dangling = VolumeFilter.parse(["dangling=true"])
    assert dangling.matches(web, in_use=False) and not dangling.matches(web, in_use=True)
    not_backed = VolumeFilter.parse(["label!=backup"], PRUNE_KEYS)
    assert not_backed.matches(web, in_use=False) and not not_backed.matches(db, in_use=False)
    for bad in (["colour=red"], ["dangling=maybe"], ["name"]):
        with pytest.raises(BadVolumeFilter):
            VolumeFilter.parse(bad)
    with pytest.raises(BadVolumeFilter, match="invalid filter 'name'"):
        VolumeFilter.parse(["name=x"], PRUNE_KEYS)
