"""Merging a create request with the image's config, as docker does."""

from __future__ import annotations

import pytest

from pyswarm.agent.engine.errors import BadSpec
from pyswarm.agent.engine.spec import build_container
from pyswarm.proto import agent_pb2, types_pb2


def _image(**config: object) -> types_pb2.Image:
    return types_pb2.Image(id="sha256:" + "ab" * 32, config=types_pb2.ImageConfig(**config))  # type: ignore[arg-type]


def _request(**fields: object) -> agent_pb2.CreateContainerRequest:
    return agent_pb2.CreateContainerRequest(image="img", **fields)  # type: ignore[arg-type]


def test_image_cmd_is_the_default_and_args_replace_it() -> None:
    image = _image(entrypoint=["/entry"], cmd=["--serve"], env=["PATH=/bin", "A=1"])
    c = build_container(_request(), image)
    assert list(c.spec.command) == ["/entry"] and list(c.spec.args) == ["--serve"]
    c = build_container(_request(spec=types_pb2.ContainerSpec(args=["--other"])), image)
    assert list(c.spec.command) == ["/entry"] and list(c.spec.args) == ["--other"]


def test_entrypoint_override_drops_image_cmd() -> None:
    image = _image(entrypoint=["/entry"], cmd=["--serve"])
    c = build_container(
        _request(spec=types_pb2.ContainerSpec(command=["sh"]), entrypoint_set=True), image
    )
    assert list(c.spec.command) == ["sh"] and list(c.spec.args) == []


def test_env_overrides_keep_order_and_path_defaults() -> None:
    c = build_container(
        _request(spec=types_pb2.ContainerSpec(env=["A=2", "B=3"])), _image(cmd=["sh"], env=["A=1"])
    )
    assert c.spec.env[0].startswith("PATH=")
    assert "A=2" in c.spec.env and "B=3" in c.spec.env and "A=1" not in c.spec.env


def test_defaults_for_dir_user_hostname_and_name() -> None:
    c = build_container(_request(), _image(cmd=["sh"], working_dir="/app", user="nobody"))
    assert c.spec.dir == "/app" and c.spec.user == "nobody"
    assert c.spec.hostname == c.id[:12] and len(c.id) == 64
    assert c.name and c.state == types_pb2.Container.CREATED


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "a/b"}, "name"),
        ({"limits": types_pb2.Resources(memory_bytes=1024)}, "memory"),
        ({"limits": types_pb2.Resources(nano_cpus=10**15)}, "cpus"),
        ({"ports": [types_pb2.PortConfig(target_port=0)]}, "publish"),
        ({"spec": types_pb2.ContainerSpec(hostname="bad_host!")}, "hostname"),
        (
            {"spec": types_pb2.ContainerSpec(mounts=[types_pb2.Mount(source="/a", target="rel")])},
            "mount.target",
        ),
    ],
)
def test_bad_specs_name_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(BadSpec) as caught:
        build_container(_request(**fields), _image(cmd=["sh"]))
    assert caught.value.field == field


def test_no_command_at_all_is_refused() -> None:
    with pytest.raises(BadSpec, match="no command"):
        build_container(_request(), _image())


def test_overlay_attachments_are_kept_in_order_and_need_the_bridge_mode() -> None:
    first = types_pb2.ContainerNetworkAttachment(network_id="n1", address="10.0.1.5/24")
    second = types_pb2.ContainerNetworkAttachment(network_id="n2", address="10.0.2.5/24")
    image = _image(cmd=["sh"])
    c = build_container(_request(overlays=[first, second]), image)
    assert [a.network_id for a in c.overlays] == ["n1", "n2"]
    with pytest.raises(BadSpec) as caught:
        build_container(_request(overlays=[first], network_mode=types_pb2.Container.HOST), image)
    assert caught.value.field == "network"
