"""The store's pure parts: key layout, op planning, failure attribution, error mapping."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc import aio

from pyswarm.common.errors import ErrorKind
from pyswarm.manager.store import (
    NODES,
    SERVICES,
    TASKS,
    Conflict,
    Create,
    Delete,
    EtcdClient,
    EtcdClientTLS,
    InvalidBatch,
    Kind,
    NameConflict,
    ObjectExists,
    ObjectNotFound,
    Op,
    Store,
    StoreError,
    StoreUnavailable,
    Update,
)
from pyswarm.manager.store.etcd_client import KeyValue, PutOp, parse_endpoints, translate_errors
from pyswarm.manager.store.kinds import name_key, parse_key
from pyswarm.manager.store.ops import plan
from pyswarm.proto import types_pb2


def kv(mod_revision: int) -> KeyValue:
    return KeyValue(b"k", b"", create_revision=1, mod_revision=mod_revision)


def test_keys_follow_the_layout() -> None:
    assert TASKS.key("abc") == b"/pyswarm/v1/tasks/abc"
    assert parse_key(b"/pyswarm/v1/tasks/abc") == ("tasks", "abc")
    assert parse_key(b"/pyswarm/v1/leader") is None
    assert parse_key(b"/other/tasks/abc") is None
    with pytest.raises(InvalidBatch):
        TASKS.key("a/b")
    with pytest.raises(InvalidBatch):
        TASKS.key("")


def test_only_messages_with_id_and_meta_are_kinds() -> None:
    with pytest.raises(ValueError, match="no id and meta"):
        Kind("metas", types_pb2.Meta)
    decoded = NODES.decode(types_pb2.Node(id="n1").SerializeToString(), 42)
    assert decoded.id == "n1" and decoded.meta.version == 42


def test_a_create_stages_timestamps_without_touching_the_caller() -> None:
    message = types_pb2.Service(id="s1")
    step = plan(Create(SERVICES, message), clock=lambda: 1000.5)
    assert [c.target for c in step.compares] == ["create"]
    (write,) = step.writes
    assert isinstance(write, PutOp)
    stored = types_pb2.Service.FromString(write.value)
    assert stored.meta.created_at.seconds == 1000 and stored.meta.version == 0
    assert not message.meta.HasField("created_at")  # only after the write commits
    step.commit(7)
    assert message.meta.version == 7 and message.meta.created_at.seconds == 1000


def test_an_update_compares_the_version_it_was_read_at() -> None:
    message = types_pb2.Service(id="s1")
    message.meta.version = 5
    message.meta.created_at.seconds = 10
    step = plan(Update(SERVICES, message), clock=lambda: 2000.0)
    (compare,) = step.compares
    assert (compare.target, compare.op, compare.value) == ("mod", "==", 5)
    (write,) = step.writes
    assert isinstance(write, PutOp)
    stored = types_pb2.Service.FromString(write.value)
    assert stored.meta.created_at.seconds == 10  # kept
    assert stored.meta.updated_at.seconds == 2000
    assert step.failure([kv(5)]) is None
    assert isinstance(step.failure([kv(6)]), Conflict)
    assert isinstance(step.failure([None]), ObjectNotFound)
    with pytest.raises(InvalidBatch, match="no version"):
        plan(Update(SERVICES, types_pb2.Service(id="s2")))


def test_failures_are_attributed_per_op() -> None:
    create = plan(Create(TASKS, types_pb2.Task(id="t1")))
    assert create.failure([None]) is None
    assert isinstance(create.failure([kv(3)]), ObjectExists)
    guarded = plan(Delete(TASKS, "t1", version=3))
    assert guarded.failure([kv(3)]) is None
    assert isinstance(guarded.failure([kv(4)]), Conflict)
    unconditional = plan(Delete(TASKS, "t1"))
    assert unconditional.compares == []
    assert unconditional.failure([None]) is None


def test_a_named_create_reserves_its_name_and_a_named_delete_releases_it() -> None:
    message = types_pb2.Service(id="s1")
    create = plan(Create(SERVICES, message, name="web"))
    web_key = b"/pyswarm/names/services/web"
    assert [(c.key, c.target, c.value) for c in create.compares] == [
        (b"/pyswarm/v1/services/s1", "create", 0),
        (web_key, "create", 0),
    ]
    assert [op.key for op in create.probes()] == [b"/pyswarm/v1/services/s1", web_key]
    index = create.writes[1]
    assert isinstance(index, PutOp) and (index.key, index.value) == (web_key, b"s1")
    assert create.failure([None, None]) is None
    taken = KeyValue(web_key, b"other", 1, 1)
    conflict = create.failure([None, taken])
    assert isinstance(conflict, NameConflict) and conflict.owner_id == "other"
    assert "name conflicts with an existing object" in str(conflict)
    delete = plan(Delete(SERVICES, "s1", version=4, name="web"))
    assert [op.key for op in delete.writes] == [b"/pyswarm/v1/services/s1", web_key]
    assert len(plan(Create(SERVICES, message)).compares) == 1  # no name: nothing reserved
    with pytest.raises(InvalidBatch, match="name"):
        name_key(SERVICES, "")


def test_errors_speak_the_callers_terms() -> None:
    conflict = Conflict("services", "s1")
    assert conflict.kind is ErrorKind.FAILED_PRECONDITION
    assert str(conflict) == "update out of sequence: services s1 changed since it was read; retry"
    unavailable = StoreUnavailable("connection refused")
    assert unavailable.kind is ErrorKind.UNAVAILABLE
    assert str(unavailable) == "cluster store unavailable: connection refused"
    assert ObjectNotFound("tasks", "t1").kind is ErrorKind.NOT_FOUND
    assert ObjectExists("tasks", "t1").kind is ErrorKind.ALREADY_EXISTS


def rpc_error(code: grpc.StatusCode, details: str) -> aio.AioRpcError:
    return aio.AioRpcError(code, aio.Metadata(), aio.Metadata(), details, None)


def test_grpc_failures_map_to_store_errors() -> None:
    with (
        pytest.raises(StoreUnavailable, match="read: connection refused"),
        translate_errors("read"),
    ):
        raise rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused")
    with pytest.raises(StoreUnavailable), translate_errors("read"):
        raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline")
    with (
        pytest.raises(StoreError, match="too many operations") as raised,
        translate_errors("transaction"),
    ):
        raise rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "too many operations in txn request")
    assert not isinstance(raised.value, StoreUnavailable)


# Never used to connect here: a client only needs its TLS material to build credentials.
NO_TLS = EtcdClientTLS(ca_pem=b"", cert_pem=b"", key_pem=b"")


def test_endpoints_are_host_and_port() -> None:
    assert EtcdClient("https://127.0.0.1:2379", tls=NO_TLS).endpoint == "127.0.0.1:2379"
    assert EtcdClient("127.0.0.1:2379", tls=NO_TLS).endpoint == "127.0.0.1:2379"
    assert EtcdClient("HTTPS://[::1]:2379", tls=NO_TLS).endpoint == "[::1]:2379"
    for malformed in ("127.0.0.1", "unix://etcd.sock:1", "https://:2379"):
        with pytest.raises(StoreError, match="host:port"):
            EtcdClient(malformed, tls=NO_TLS)


def test_a_plain_http_endpoint_is_refused_naming_it() -> None:
    with pytest.raises(StoreError, match=r"'http://10.0.0.1:2379' is plain http.*only over TLS"):
        EtcdClient("https://10.0.0.2:2379,http://10.0.0.1:2379", tls=NO_TLS)
    with pytest.raises(StoreError, match="plain http"):
        EtcdClient("HTTP://10.0.0.1:2379", tls=NO_TLS)


def test_a_batch_naming_an_object_twice_is_refused_before_any_write() -> None:
    class NoEtcd(EtcdClient):
        async def txn(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
            raise AssertionError("no transaction may be sent")

    store = Store(NoEtcd("127.0.0.1:1", tls=NO_TLS))
    ops: list[Op] = [Create(TASKS, types_pb2.Task(id="t1")), Delete(TASKS, "t1")]
    with pytest.raises(InvalidBatch, match="appears twice"):
        asyncio.run(store.batch(ops))
    with pytest.raises(ValueError):
        Store(NoEtcd("127.0.0.1:1", tls=NO_TLS), max_txn_ops=0)


def test_several_etcd_endpoints_are_one_client() -> None:
    assert parse_endpoints("https://10.0.0.1:2379, 10.0.0.2:2379") == [
        "10.0.0.1:2379",
        "10.0.0.2:2379",
    ]
    client = EtcdClient(["127.0.0.1:1", "127.0.0.1:2"], tls=NO_TLS)
    assert client.endpoint == "127.0.0.1:1"
    client.member_down("127.0.0.1:2")  # not the current one: nothing moves
    assert client.endpoint == "127.0.0.1:1"
    client.member_down("127.0.0.1:1")
    assert client.endpoint == "127.0.0.1:2"
    with pytest.raises(StoreError, match="invalid etcd endpoint 'nohost'"):
        EtcdClient("127.0.0.1:2379,nohost", tls=NO_TLS)
