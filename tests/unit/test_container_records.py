"""The container records: what a restarted agent finds, and what it must not."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pyswarm.agent.engine.errors import NameInUse, NoSuchContainer
from pyswarm.agent.engine.records import (
    REMOVED_PREFIX,
    ContainerRecords,
    spread_subdirectories,
)
from pyswarm.proto import types_pb2


def _container(cid: str, name: str) -> types_pb2.Container:
    return types_pb2.Container(id=cid, name=name, state=types_pb2.Container.CREATED)


def test_saved_records_are_found_again_durable_or_not(tmp_path: Path) -> None:
    records = ContainerRecords(tmp_path)
    records.save(_container("a" * 64, "durable"))
    records.save(_container("b" * 64, "cached"), durable=False)
    records.sync("b" * 64)
    again = ContainerRecords(tmp_path)
    assert {c.name for c in again} == {"durable", "cached"}


def test_discard_hides_the_record_at_once_and_purge_deletes_the_rest(tmp_path: Path) -> None:
    records = ContainerRecords(tmp_path)
    cid = "c" * 64
    records.save(_container(cid, "gone"))
    (records.dir(cid) / "upper").mkdir()
    (records.log_path(cid)).write_text("a line\n")
    aside = records.discard(cid)
    assert aside is not None and aside.is_dir()
    assert records.find(cid) is None and not records.dir(cid).exists()
    assert len(ContainerRecords(tmp_path)) == 0
    records.purge(aside)
    assert not aside.exists()
    assert records.discard(cid) is None  # nothing left to discard


def test_a_removal_left_unfinished_is_finished_on_load(tmp_path: Path) -> None:
    records = ContainerRecords(tmp_path)
    cid = "d" * 64
    records.save(_container(cid, "half-removed"))
    aside = records.discard(cid)
    assert aside is not None and aside.name == REMOVED_PREFIX + cid
    reloaded = ContainerRecords(tmp_path)
    assert len(reloaded) == 0
    assert not aside.exists()


def test_names_follow_renames_and_removals(tmp_path: Path) -> None:
    records = ContainerRecords(tmp_path)
    first, second = "f" * 64, "0" * 64
    records.save(_container(first, "web"))
    records.save(_container(second, "db"), durable=False)
    assert records.get("/web").id == first and records.get("db").id == second
    with pytest.raises(NameInUse):
        records.check_name_free("web")
    records.check_name_free("web", exclude=first)  # its own name, as a rename to itself
    renamed = records.get(first)
    renamed.name = "api"
    records.save(renamed, durable=False)
    records.check_name_free("web")  # free again
    assert records.get("api").id == first
    with pytest.raises(NoSuchContainer):
        records.get("web")
    records.delete(second)
    records.check_name_free("db")
    assert {c.name for c in ContainerRecords(tmp_path)} == {"api"}


def test_durable_records_are_known_so_a_start_skips_writing_them_again(tmp_path: Path) -> None:
    records = ContainerRecords(tmp_path)
    created, run = "1" * 64, "2" * 64
    records.save(_container(created, "created"))  # create: written and synced
    records.put(_container(run, "run"))  # run: indexed, written during its start
    assert records.is_durable(created) and not records.is_durable(run)
    records.write(records.get(run))
    assert not records.is_durable(run)  # written, not synced
    records.sync(run)
    assert records.is_durable(run)
    assert ContainerRecords(tmp_path).is_durable(run)  # found on disk after a restart
    records.discard(created)
    assert not records.is_durable(created)


def test_delete_removes_the_directory_now(tmp_path: Path) -> None:
    records = ContainerRecords(tmp_path)
    cid = "e" * 64
    records.save(_container(cid, "deleted"))
    records.delete(cid)
    assert list(tmp_path.iterdir()) == []


def test_writable_layer_size_counts_a_hard_linked_file_once(tmp_path: Path) -> None:
    records = ContainerRecords(tmp_path)
    cid = "f" * 64
    records.save(_container(cid, "sized"))
    upper = records.dir(cid) / "upper"
    (upper / "sub").mkdir(parents=True)
    (upper / "a").write_bytes(b"x" * 100)
    (upper / "sub" / "b").write_bytes(b"y" * 20)
    (upper / "sub" / "a-again").hardlink_to(upper / "a")
    assert records.writable_layer_size(cid) == 120
    assert records.writable_layer_size("0" * 64) == 0


def test_a_tasks_container_is_found_by_its_task_id(tmp_path: Path) -> None:
    records = ContainerRecords(tmp_path)
    older = types_pb2.Container(id="a" * 64, name="web.1.t1", task_id="t1")
    older.created_at.FromSeconds(100)
    newer = types_pb2.Container(id="b" * 64, name="web.1.t1b", task_id="t1")
    newer.created_at.FromSeconds(200)
    other = types_pb2.Container(id="c" * 64, name="solo")
    for container in (older, newer, other):
        records.save(container, durable=False)
    assert records.of_task("t1") == newer
    assert records.of_task("t2") is None
    records.discard(newer.id)
    assert records.of_task("t1") == older
    # A restarted agent indexes what it reads back from disk.
    assert ContainerRecords(tmp_path).of_task("t1") == older
    records.discard(older.id)
    assert records.of_task("t1") is None


def test_the_records_root_spreads_container_directories_over_ext4_block_groups(
    tmp_path: Path,
) -> None:
    """`chattr +T` on ext4 (see spread_subdirectories); elsewhere nothing is changed."""
    root = tmp_path / "containers"
    ContainerRecords(root)
    kind = subprocess.run(["stat", "-f", "-c", "%T", str(root)], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    flags = subprocess.run(["lsattr", "-d", str(root)], capture_output=True, text=True,
                           check=False)  # fmt: skip
    if kind == "ext2/ext3":  # how stat names ext4 too
        assert "T" in flags.stdout.split()[0], flags.stdout
        assert spread_subdirectories(root)  # again: already set, still true
        assert flags.stdout == subprocess.run(["lsattr", "-d", str(root)], capture_output=True,
                                              text=True, check=False).stdout  # fmt: skip
    else:
        assert not spread_subdirectories(root), f"{kind} has no top-directory flag"
    assert not spread_subdirectories(tmp_path / "missing")
