"""The backup file: sealed under the unlock key with autolock on, refused when corrupt,
locked without its key, or opened with a wrong one."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pyswarm.manager.recovery import BackupRefused, open_backup, read_backup, write_backup
from pyswarm.manager.seal import new_unlock_key
from pyswarm.proto import backup_pb2


def _contents() -> backup_pb2.BackupContents:
    contents = backup_pb2.BackupContents(cluster_id="c1", revision=7, data_key=bytes(range(32)))
    contents.entries.add(key=b"/pyswarm/v1/services/s1", value=b"spec")
    return contents


def test_an_open_backup_reads_back_whole() -> None:
    header = read_backup(write_backup(_contents()))
    assert not header.locked
    assert open_backup(header) == _contents()


def test_a_locked_backup_opens_only_with_its_unlock_key() -> None:
    key = new_unlock_key()
    data = write_backup(_contents(), key)
    assert bytes(range(32)) not in data, "the data key is not in clear"
    header = read_backup(data)
    assert header.locked and header.cluster_id == "c1"
    with pytest.raises(BackupRefused, match="give its unlock key"):
        open_backup(header)
    with pytest.raises(BackupRefused, match="does not open this backup"):
        open_backup(header, new_unlock_key())
    assert open_backup(header, key) == _contents()


def test_a_locked_backup_under_another_cluster_id_does_not_open() -> None:
    key = new_unlock_key()
    header = read_backup(write_backup(_contents(), key))
    header.cluster_id = "c2"  # contents moved under another header
    with pytest.raises(BackupRefused, match="does not open"):
        open_backup(header, key)


@pytest.mark.parametrize(
    ("mangle", "words"),
    [
        (lambda data: data[:-5], "corrupt"),
        (lambda data: data[:40] + bytes([data[40] ^ 1]) + data[41:], "corrupt"),
        (lambda data: b"hello" + data, "not a pyswarm backup"),
        (lambda data: b"", "not a pyswarm backup"),
    ],
)
def test_a_damaged_file_is_refused(mangle: Callable[[bytes], bytes], words: str) -> None:
    data = write_backup(_contents())
    with pytest.raises(BackupRefused, match=words):
        read_backup(mangle(data))
