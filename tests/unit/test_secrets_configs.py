"""Secrets and configs, their pure parts: the CLI's reference syntax, the manager's
resolution and limits, sealing at rest, and the agent's in-memory holder."""

from __future__ import annotations

import pytest

from pyswarm.agent.cluster.task_files import TaskFiles
from pyswarm.agent.engine.task_files import MissingTaskFiles, task_files
from pyswarm.cli.parse import CliInputError
from pyswarm.cli.service_files import apply_file_changes, parse_file_reference
from pyswarm.common.errors import InvalidArgument, NotFound
from pyswarm.manager.seal import DataKey, SealBroken, SealingCodec
from pyswarm.manager.secrets.flavors import CONFIG, SECRET
from pyswarm.manager.secrets.references import resolve_references
from pyswarm.manager.store import CONFIGS, SECRETS
from pyswarm.proto import dispatcher_pb2, types_pb2

KIB = 1024


def secret(secret_id: str, name: str, data: bytes = b"x") -> types_pb2.Secret:
    return types_pb2.Secret(
        id=secret_id,
        spec=types_pb2.SecretSpec(annotations=types_pb2.Annotations(name=name), data=data),
    )


def config(config_id: str, name: str, data: bytes = b"x") -> types_pb2.Config:
    return types_pb2.Config(
        id=config_id,
        spec=types_pb2.ConfigSpec(annotations=types_pb2.Annotations(name=name), data=data),
    )


# -- the CLI's syntax --------------------------------------------------------------


def test_a_reference_is_a_name_or_docker_long_form() -> None:
    assert parse_file_reference("db", "--secret") == ("db", types_pb2.FileTarget())
    name, target = parse_file_reference(
        "source=db,target=pass,uid=100,gid=101,mode=0400", "--secret"
    )
    assert name == "db"
    assert target == types_pb2.FileTarget(name="pass", uid="100", gid="101", mode=0o400)
    assert parse_file_reference("src=app,mode=292", "--config")[1].mode == 292  # decimal


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("target=x", "source is required"),
        ("source=db,colour=red", "invalid field key colour"),
        ("source=db,oops", "must be a key=value pair"),
        ("source=db,uid=root", "invalid uid"),
        ("source=db,mode=rw", "invalid mode"),
        ("", "invalid --secret value"),
    ],
)
def test_a_bad_reference_names_the_flag(value: str, words: str) -> None:
    with pytest.raises(CliInputError, match=words) as caught:
        parse_file_reference(value, "--secret")
    assert caught.value.field == "--secret"


def test_update_removes_then_adds() -> None:
    spec = types_pb2.ServiceSpec()
    spec.task.container.secrets.add(secret_id="i1", secret_name="old")
    spec.task.container.secrets.add(secret_id="i2", secret_name="kept")
    spec.task.container.configs.add(config_id="c1", config_name="conf")
    apply_file_changes(spec, ["new", "kept"], ["old"], [], ["c1"])
    assert [r.secret_name for r in spec.task.container.secrets] == ["new", "kept"]
    assert list(spec.task.container.configs) == []


# -- the manager -------------------------------------------------------------------


def test_references_are_resolved_with_docker_defaults() -> None:
    spec = types_pb2.ServiceSpec()
    spec.task.container.secrets.add(secret_name="db")
    spec.task.container.secrets.add(secret_name="s2", file=types_pb2.FileTarget(name="a/b"))
    spec.task.container.configs.add(config_name="app.conf")
    spec.task.container.configs.add(config_name="c2", file=types_pb2.FileTarget(name="etc/x"))
    resolve_references(
        spec,
        [secret("secret1", "db"), secret("secret2", "s2")],
        [config("config1", "app.conf"), config("config2", "c2")],
    )
    first, second = spec.task.container.secrets
    assert (first.secret_id, first.file.name, first.file.mode) == ("secret1", "db", 0o444)
    assert (first.file.uid, first.file.gid) == ("0", "0")
    assert (second.secret_id, second.file.name) == ("secret2", "a/b")
    names = [(c.config_id, c.file.name) for c in spec.task.container.configs]
    assert names == [("config1", "/app.conf"), ("config2", "etc/x")]


@pytest.mark.parametrize(
    ("secret_target", "error"),
    [
        ("/etc/passwd", InvalidArgument),  # a secret lives under /run/secrets
        ("../escape", InvalidArgument),
        ("db", InvalidArgument),  # the same target twice
    ],
)
def test_bad_targets_are_refused(secret_target: str, error: type[Exception]) -> None:
    spec = types_pb2.ServiceSpec()
    spec.task.container.secrets.add(secret_name="db")
    spec.task.container.secrets.add(secret_name="s2", file=types_pb2.FileTarget(name=secret_target))
    with pytest.raises(error) as caught:
        resolve_references(spec, [secret("i1", "db"), secret("i2", "s2")], [])
    assert caught.value.field == "task.container.secrets"  # type: ignore[attr-defined]


@pytest.mark.parametrize("target", ["/proc/x", "/dev/shm/x", "/sys", "a//b", "/"])
def test_a_config_target_outside_the_image_files_is_refused(target: str) -> None:
    spec = types_pb2.ServiceSpec()
    spec.task.container.configs.add(config_name="c", file=types_pb2.FileTarget(name=target))
    with pytest.raises(InvalidArgument, match="invalid config target") as caught:
        resolve_references(spec, [], [config("c1", "c")])
    assert caught.value.field == "task.container.configs"


def test_a_missing_reference_is_not_found_by_name() -> None:
    spec = types_pb2.ServiceSpec()
    spec.task.container.configs.add(config_name="nope")
    with pytest.raises(NotFound, match="config not found: nope"):
        resolve_references(spec, [], [config("c1", "other")])


def test_swarm_size_limits_and_names() -> None:
    SECRET.validate_spec(secret("i", "ok", b"x" * 500 * KIB).spec)
    with pytest.raises(InvalidArgument, match="500 KiB") as caught:
        SECRET.validate_spec(secret("i", "ok", b"x" * (500 * KIB + 1)).spec)
    assert caught.value.field == "data"
    CONFIG.validate_spec(config("i", "ok", b"x" * 1000 * KIB).spec)
    with pytest.raises(InvalidArgument, match="1000 KiB"):
        CONFIG.validate_spec(config("i", "ok", b"x" * (1000 * KIB + 1)).spec)
    with pytest.raises(InvalidArgument, match="larger than 0"):
        SECRET.validate_spec(secret("i", "ok", b"").spec)
    for bad in ("-lead", "a" * 65, "sp ace", ""):
        with pytest.raises(InvalidArgument) as named:
            SECRET.validate_spec(secret("i", bad).spec)
        assert named.value.field == "name"
    SECRET.validate_spec(secret("i", "a" * 64).spec)


def test_the_data_is_sealed_at_rest_and_bound_to_its_record() -> None:
    codec = SealingCodec("cluster1", DataKey.generate())
    data = b"the-bytes-of-the-secret"
    stored = codec.encode(SECRETS, secret("s1", "db", data))
    assert data not in stored
    opened = codec.decode(SECRETS, stored, 7)
    assert opened.spec.data == data and not opened.sealed_data and opened.meta.version == 7
    # Copied into another record, the seal does not open.
    moved = types_pb2.Secret.FromString(stored)
    moved.id = "s2"
    with pytest.raises(SealBroken):
        codec.decode(SECRETS, moved.SerializeToString(), 1)
    stored_config = codec.encode(CONFIGS, config("c1", "conf", b"config-bytes"))
    assert b"config-bytes" not in stored_config
    assert codec.decode(CONFIGS, stored_config, 1).spec.data == b"config-bytes"


# -- the agent ---------------------------------------------------------------------


def task_using(task_id: str, secret_id: str, *, desired: int = types_pb2.RUNNING) -> types_pb2.Task:
    task = types_pb2.Task(id=task_id, desired_state=desired)  # type: ignore[arg-type]
    task.spec.container.secrets.add(
        secret_id=secret_id, secret_name=f"name-{secret_id}", file=types_pb2.FileTarget(name="f")
    )
    return task


def test_the_node_holds_data_only_while_a_task_to_run_uses_it() -> None:
    files = TaskFiles()
    t1, t2 = task_using("t1", "s1"), task_using("t2", "s2")
    assert files.missing(t1) == ["secret name-s1"]
    assignments = dispatcher_pb2.Assignments(
        updated=[t1, t2], secrets=[secret("s1", "a", b"one"), secret("s2", "b", b"two")]
    )
    files.receive(assignments)
    files.keep_for([t1, t2])
    assert files.missing(t1) == [] and files.secret_data("s2") == b"two"
    files.keep_for([t1, task_using("t2", "s2", desired=types_pb2.SHUTDOWN)])
    assert files.held() == ({"s1"}, set())
    files.keep_for([])
    assert files.held() == (set(), set())
    assert "one" not in repr(files)


def test_the_runtime_files_come_from_memory_or_not_at_all() -> None:
    spec = types_pb2.ContainerSpec()
    spec.secrets.add(
        secret_id="s1", secret_name="db", file=types_pb2.FileTarget(name="db", uid="5", mode=0o400)
    )
    spec.configs.add(config_id="c1", config_name="conf", file=types_pb2.FileTarget(name="/x"))
    files = TaskFiles()
    with pytest.raises(MissingTaskFiles, match="secret db, config conf"):
        task_files(files, spec)
    files.receive(
        dispatcher_pb2.Assignments(
            secrets=[secret("s1", "db", b"pw")], configs=[config("c1", "conf", b"cf")]
        )
    )
    secrets, configs = task_files(files, spec)
    assert [(f.target, f.data, f.uid, f.mode) for f in secrets] == [
        ("/run/secrets/db", b"pw", 5, 0o400)
    ]
    assert [(f.target, f.data, f.mode) for f in configs] == [("/x", b"cf", 0o444)]
