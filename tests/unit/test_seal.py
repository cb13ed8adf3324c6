"""The data key, the unlock key and the key file, and the store codec that seals."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pyswarm.manager.seal import (
    SENSITIVE_CLUSTER_FIELDS,
    DataKey,
    InvalidUnlockKey,
    ManagerLocked,
    SealBroken,
    SealingCodec,
    WrongUnlockKey,
    new_unlock_key,
    parse_unlock_key,
)
from pyswarm.manager.seal.codec import SEALED_PASSWORD_PREFIX
from pyswarm.manager.seal.keyfile import (
    is_locked,
    key_file_path,
    open_key_file,
    read_key_file,
    write_key_file,
)
from pyswarm.manager.store import CLUSTERS, SERVICES, TASKS
from pyswarm.proto import types_pb2

SECRET = "pw-not-in-the-clear"


def test_a_sealed_value_opens_only_with_its_key_and_context() -> None:
    key = DataKey.generate()
    box = key.seal(b"root key", b"cluster-a")
    assert b"root key" not in box.SerializeToString()
    assert key.open(box, b"cluster-a") == b"root key"
    with pytest.raises(SealBroken):
        key.open(box, b"cluster-b")
    with pytest.raises(SealBroken):
        DataKey.generate().open(box, b"cluster-a")
    tampered = type(box)()
    tampered.CopyFrom(box)
    tampered.ciphertext = bytes([box.ciphertext[0] ^ 1]) + box.ciphertext[1:]
    with pytest.raises(SealBroken):
        key.open(tampered, b"cluster-a")
    assert key.raw().hex() not in repr(key)


def test_unlock_keys_read_as_dockers() -> None:
    key = new_unlock_key()
    assert key.startswith("SWMKEY-1-") and len(parse_unlock_key(key)) == 32
    assert parse_unlock_key(f"  {key}\n") == parse_unlock_key(key)
    for bad in ("", "SWMKEY-1-", "SWMKEY-1-abc", "SWMTKN-1-" + key[9:], key + "xx"):
        with pytest.raises(InvalidUnlockKey):
            parse_unlock_key(bad)


def test_the_key_file_is_private_and_locked_under_the_unlock_key(tmp_path: Path) -> None:
    key = DataKey.generate()
    write_key_file(tmp_path, "c1", key)
    assert stat.S_IMODE(os.stat(key_file_path(tmp_path)).st_mode) == 0o600
    record = read_key_file(tmp_path)
    assert record is not None and not is_locked(record)
    assert open_key_file(record).raw() == key.raw()

    unlock = new_unlock_key()
    write_key_file(tmp_path, "c1", key, unlock)
    locked = read_key_file(tmp_path)
    assert locked is not None and is_locked(locked)
    assert key.raw() not in key_file_path(tmp_path).read_bytes()
    with pytest.raises(ManagerLocked, match="this manager is locked: run swarm unlock"):
        open_key_file(locked)
    with pytest.raises(WrongUnlockKey):
        open_key_file(locked, new_unlock_key())
    with pytest.raises(InvalidUnlockKey):
        open_key_file(locked, "not a key")
    assert open_key_file(locked, unlock).raw() == key.raw()
    assert read_key_file(tmp_path / "absent") is None


def _cluster() -> types_pb2.Cluster:
    return types_pb2.Cluster(
        id="c1",
        root_ca_cert=b"-----BEGIN CERTIFICATE-----",
        root_ca_key=b"-----BEGIN EC PRIVATE KEY-----",
        worker_join_token="SWMTKN-1-worker",
        manager_join_token="SWMTKN-1-manager",
        unlock_key="SWMKEY-1-x",
        managers={"m1": "127.0.0.1:4242"},
    )


def test_the_codec_seals_every_sensitive_cluster_field() -> None:
    codec = SealingCodec("c1", DataKey.generate())
    cluster = _cluster()
    stored = codec.encode(CLUSTERS, cluster)
    for secret in (b"PRIVATE KEY", b"SWMTKN-1-worker", b"SWMTKN-1-manager", b"SWMKEY-1-x"):
        assert secret not in stored
    assert b"CERTIFICATE" in stored and b"127.0.0.1:4242" in stored  # public parts stay
    assert cluster.root_ca_key  # the caller's message is not changed
    raw = types_pb2.Cluster.FromString(stored)
    assert raw.sealed_secrets and not any(getattr(raw, f) for f in SENSITIVE_CLUSTER_FIELDS)
    opened = codec.decode(CLUSTERS, stored, 7)
    assert opened.meta.version == 7
    expected = _cluster()
    expected.meta.version = 7
    assert opened == expected
    with pytest.raises(SealBroken):
        SealingCodec("c1", DataKey.generate()).decode(CLUSTERS, stored, 7)
    # An old-format record (clear fields) still reads.
    old = _cluster().SerializeToString()
    assert codec.decode(CLUSTERS, old, 1).root_ca_key == _cluster().root_ca_key


def _service(service_id: str, password: str = SECRET) -> types_pb2.Service:
    service = types_pb2.Service(id=service_id)
    auth = service.spec.task.container.registry_auth
    auth.registry, auth.username, auth.password = "r.example:5000", "alice", password
    service.previous_spec.CopyFrom(service.spec)
    return service


def test_registry_passwords_are_sealed_per_object() -> None:
    codec = SealingCodec("c1", DataKey.generate())
    stored = codec.encode(SERVICES, _service("s1"))
    assert SECRET.encode() not in stored and b"alice" in stored
    raw = types_pb2.Service.FromString(stored)
    assert raw.spec.task.container.registry_auth.password.startswith(SEALED_PASSWORD_PREFIX)
    opened = codec.decode(SERVICES, stored, 3)
    assert opened.spec.task.container.registry_auth.password == SECRET
    assert opened.previous_spec.task.container.registry_auth.password == SECRET
    # A sealed password moved into another service does not open there.
    moved = _service("s2", raw.spec.task.container.registry_auth.password)
    with pytest.raises(SealBroken):
        codec.decode(SERVICES, moved.SerializeToString(), 1)

    task = types_pb2.Task(id="t1", spec=_service("s1").spec.task)
    stored_task = codec.encode(TASKS, task)
    assert SECRET.encode() not in stored_task
    assert codec.decode(TASKS, stored_task, 1).spec.container.registry_auth.password == SECRET


def test_a_spec_without_credentials_is_left_as_it_is() -> None:
    codec = SealingCodec("c1", DataKey.generate())
    service = types_pb2.Service(id="s1")
    service.spec.task.container.image = "busybox"
    opened = codec.decode(SERVICES, codec.encode(SERVICES, service), 1)
    assert not opened.spec.task.container.HasField("registry_auth")
    assert not opened.HasField("previous_spec")


def test_a_password_that_looks_sealed_is_still_sealed_and_read_back() -> None:
    codec = SealingCodec("c1", DataKey.generate())
    odd = SEALED_PASSWORD_PREFIX + "not-a-box"
    stored = codec.encode(SERVICES, _service("s1", odd))
    assert odd.encode() not in stored
    assert codec.decode(SERVICES, stored, 1).spec.task.container.registry_auth.password == odd
