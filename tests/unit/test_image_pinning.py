"""Digest pinning's rules and registry-credential redaction, without a network."""

from __future__ import annotations

import asyncio

import pytest

from pyswarm.agent.cluster.image_pull import PullSummary
from pyswarm.agent.cluster.task_container import create_request
from pyswarm.common.errors import InvalidArgument
from pyswarm.images.registry import Progress
from pyswarm.images.registry.resolve import names_registry, needs_digest
from pyswarm.manager.controlapi.images import (
    keep_registry_auth,
    pin_image,
    redact_service,
    redact_task,
    unpinned_warning,
)
from pyswarm.proto import types_pb2

DIGEST = "sha256:" + "ab" * 32
SECRET = "s3cret-pa55"


@pytest.mark.parametrize(
    ("reference", "explicit"),
    [
        ("busybox", False),
        ("nginx:1.25", False),
        ("library/nginx:1.25", False),
        ("me/app", False),
        ("localhost/app:1", True),
        ("localhost:5000/app", True),
        ("127.0.0.1:5000/web:2", True),
        ("registry.example/team/app", True),
        ("localhost", False),  # a bare name, not a host: Docker Hub's "localhost"
        ("my.app", False),  # one component: a repository name, even with a dot
    ],
)
def test_only_names_with_an_explicit_registry_host_are_resolved(
    reference: str, explicit: bool
) -> None:
    assert names_registry(reference) is explicit
    assert needs_digest(reference) is explicit


def test_a_reference_that_already_has_a_digest_is_kept() -> None:
    assert not needs_digest(f"127.0.0.1:5000/web:2@{DIGEST}")
    assert not needs_digest(f"127.0.0.1:5000/web@{DIGEST}")


def spec_with(image: str, password: str = "") -> types_pb2.ServiceSpec:
    spec = types_pb2.ServiceSpec()
    spec.annotations.name = "web"
    spec.task.container.image = image
    if password:
        auth = spec.task.container.registry_auth
        auth.registry, auth.username, auth.password = "127.0.0.1:5000", "alice", password
    return spec


def test_docker_hub_names_are_left_as_given_without_any_request() -> None:
    # insecure=() and no credentials: a request for "busybox" would go to Docker Hub
    # over https; pin_image must return before making one.
    for image in ("busybox", "nginx:1.25", "me/app:2"):
        spec = spec_with(image)
        assert asyncio.run(pin_image(spec, types_pb2.RegistryAuth(), ())) == []
        assert spec.task.container.image == image


def test_a_malformed_registry_reference_is_invalid_argument_naming_the_image() -> None:
    spec = spec_with("127.0.0.1:5000/Web:1")
    with pytest.raises(InvalidArgument) as caught:
        asyncio.run(pin_image(spec, types_pb2.RegistryAuth(), ()))
    assert caught.value.field == "task.container.image"


def test_the_warning_is_dockers() -> None:
    assert unpinned_warning("127.0.0.1:9/x:1") == (
        "image 127.0.0.1:9/x:1 could not be accessed on a registry to record its digest."
        " Each node will access 127.0.0.1:9/x:1 independently, possibly leading to"
        " different nodes running different versions of the image."
    )


def test_answers_never_carry_the_password() -> None:
    service = types_pb2.Service(id="s1", spec=spec_with("127.0.0.1:5000/web:1", SECRET))
    service.previous_spec.CopyFrom(spec_with("127.0.0.1:5000/web:0", SECRET))
    redacted = redact_service(service)
    assert SECRET not in str(redacted)
    assert SECRET.encode() not in redacted.SerializeToString()
    assert redacted.spec.task.container.registry_auth.username == "alice"
    # The stored object is untouched: agents still get the password with the task.
    assert service.spec.task.container.registry_auth.password == SECRET

    task = types_pb2.Task(id="t1")
    task.spec.CopyFrom(service.spec.task)
    assert SECRET.encode() not in redact_task(task).SerializeToString()
    assert task.spec.container.registry_auth.password == SECRET


def test_redaction_adds_nothing_that_was_not_there() -> None:
    plain = types_pb2.Service(id="s1", spec=spec_with("busybox"))
    redacted = redact_service(plain)
    assert redacted == plain
    assert not redacted.HasField("previous_spec")
    assert not redacted.spec.task.container.HasField("registry_auth")


def test_an_update_without_a_password_keeps_the_services_credentials() -> None:
    current = spec_with("127.0.0.1:5000/web:1", SECRET)
    read_back = redact_service(types_pb2.Service(spec=current)).spec  # what the CLI read
    keep_registry_auth(read_back, current)
    assert read_back.task.container.registry_auth.password == SECRET
    fresh = spec_with("127.0.0.1:5000/web:1", "new-one")  # --with-registry-auth again
    keep_registry_auth(fresh, current)
    assert fresh.task.container.registry_auth.password == "new-one"


def test_the_container_record_gets_no_credentials() -> None:
    task = types_pb2.Task(id="t1", service_id="s1", slot=1)
    task.spec.CopyFrom(spec_with("127.0.0.1:5000/web:1", SECRET).task)
    request = create_request(task)
    assert not request.spec.HasField("registry_auth")
    assert SECRET.encode() not in request.SerializeToString()
    assert create_request(task, "sha256:" + "c" * 64).image == "sha256:" + "c" * 64


def test_the_pull_summary_counts_layers_and_bytes() -> None:
    summary = PullSummary("127.0.0.1:5000/web:1")
    summary.add(Progress("aaa", "Already exists", 1_000_000, 1_000_000))
    summary.add(Progress("bbb", "Pulling fs layer", 0, 2_400_000))
    summary.add(Progress("bbb", "Downloading", 200_000, 2_400_000))
    assert summary.line() == "pulling 127.0.0.1:5000/web:1: 1/2 layers, 1.2MB/3.4MB"
    summary.add(Progress("bbb", "Pull complete", 2_400_000, 2_400_000))
    assert summary.line() == "pulling 127.0.0.1:5000/web:1: 2/2 layers, 3.4MB/3.4MB"


def test_ls_and_ps_show_a_pinned_image_without_its_digest_unless_no_trunc() -> None:
    from pyswarm.cli.task_rows import shown_image

    pinned = "127.0.0.1:5000/web:1@sha256:" + "a" * 64
    assert shown_image(pinned, no_trunc=False) == "127.0.0.1:5000/web:1"
    assert shown_image(pinned, no_trunc=True) == pinned
    assert shown_image("busybox", no_trunc=False) == "busybox"
