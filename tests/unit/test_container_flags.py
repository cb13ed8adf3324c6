"""The container flags' parsers and rules (common/, cli/service_container.py), task
templates, and the resolv.conf they make: pure functions, no root."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyswarm.agent.cluster.task_container import create_request
from pyswarm.agent.dns import container_resolv_conf
from pyswarm.cli.service_container import apply_container_flags, apply_container_updates
from pyswarm.common.errors import InvalidArgument
from pyswarm.common.name_resolution import parse_extra_host
from pyswarm.common.sysctls import parse_sysctl, validate_sysctl
from pyswarm.common.task_templates import expand, validate
from pyswarm.common.ulimits import parse_ulimit
from pyswarm.manager.controlapi.validation import validate_service_spec
from pyswarm.proto import types_pb2


def test_sysctls_allowed_are_the_namespaced_ones() -> None:
    for name in ("net.ipv4.ip_forward", "kernel.shmmax", "kernel.msgmnb", "fs.mqueue.msg_max"):
        validate_sysctl(name, "1")
    for name in ("kernel.panic", "vm.swappiness", "fs.file-max", "kernel.shmmax/../x", "net"):
        with pytest.raises(InvalidArgument, match="sysctl") as caught:
            validate_sysctl(name, "1")
        assert name in caught.value.message
    with pytest.raises(InvalidArgument, match="host's network"):
        validate_sysctl("net.core.somaxconn", "1", host_network=True)
    assert parse_sysctl("net.core.somaxconn=1024") == ("net.core.somaxconn", "1024")
    with pytest.raises(InvalidArgument, match="NAME=VALUE"):
        parse_sysctl("net.core.somaxconn")


def test_ulimits_parse_as_docker_does() -> None:
    assert parse_ulimit("nofile=1024:2048") == ("nofile", 1024, 2048)
    assert parse_ulimit("core=0") == ("core", 0, 0)
    assert parse_ulimit("memlock=-1:-1") == ("memlock", -1, -1)
    for text, named in (("nofiles=1", "nofiles"), ("nofile=2:1", "nofile"), ("nofile", "nofile"),
                        ("nofile=x", "nofile=x"), ("nofile=-1:5", "nofile")):  # fmt: skip
        with pytest.raises(InvalidArgument) as caught:
            parse_ulimit(text)
        assert named in caught.value.message


def test_extra_hosts_are_stored_ip_first() -> None:
    assert parse_extra_host("db:10.0.0.5") == "10.0.0.5 db"
    assert parse_extra_host("v6:fd00::1") == "fd00::1 v6"
    assert parse_extra_host("h=192.0.2.1") == "192.0.2.1 h"
    for bad in ("db", "db:", ":10.0.0.1", "db:nope", "a b:10.0.0.1"):
        with pytest.raises(InvalidArgument):
            parse_extra_host(bad)


VALUES = {".Service.Name": "web", ".Task.Slot": "3", ".Node.Hostname": "node-2"}


def test_templates_expand_known_placeholders_only() -> None:
    assert expand("{{.Service.Name}}-{{ .Task.Slot }}", VALUES, "hostname") == "web-3"
    assert expand("plain", {}, "hostname") == "plain"
    validate("{{.Node.Hostname}}.{{.Task.ID}}", "hostname")
    for bad in ("{{.Service.Nme}}", "{{.Task.Slot", "{{index .Service.Labels 1}}"):
        with pytest.raises(InvalidArgument, match="template"):
            validate(bad, "hostname")


def test_task_templates_are_expanded_for_the_task_and_node() -> None:
    task = types_pb2.Task(id="t1", service_id="s1", slot=2, node_id="n1")
    task.annotations.labels["com.docker.swarm.service.name"] = "api"
    task.spec.container.hostname = "{{.Service.Name}}-{{.Task.Slot}}.{{.Node.Hostname}}"
    task.spec.container.env.extend(["SLOT={{.Task.Slot}}", "NODE={{.Node.ID}}", "PLAIN=x"])
    request = create_request(task, node=types_pb2.NodeDescription(hostname="host-a"))
    assert request.spec.hostname == "api-2.host-a"
    assert list(request.spec.env) == ["SLOT=2", "NODE=n1", "PLAIN=x"]
    assert task.spec.container.hostname.startswith("{{")  # the task itself is unchanged


def test_resolv_conf_takes_the_containers_dns_settings() -> None:
    host = "nameserver 192.0.2.1\nsearch corp.test\noptions edns0\n"
    assert container_resolv_conf(
        host, embedded_resolver=False, nameservers=["198.51.100.1"], options=["ndots:2"]
    ) == ("nameserver 198.51.100.1\nsearch corp.test\noptions ndots:2\n")
    # Overlay containers: the cluster's resolver stays first.
    assert container_resolv_conf(
        host, embedded_resolver=True, nameservers=["198.51.100.1"], search=["a.test"]
    ) == ("nameserver 127.0.0.11\nnameserver 198.51.100.1\nsearch a.test\noptions edns0 ndots:0\n")


def _created(tmp_path: Path, **params: object) -> types_pb2.ContainerSpec:
    container = types_pb2.ContainerSpec(image="busybox", env=["FROM_E=1"])
    apply_container_flags(container, params)
    return container


def test_service_create_flags(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\n\nA=1\nB= spaced value\n")
    container = _created(
        tmp_path, env_file=[str(env_file)], container_label=["tier=web"],
        entrypoint="sh -c", init=True, read_only=True, sysctl=["net.core.somaxconn=512"],
        ulimit=["nofile=100:200"], dns=["192.0.2.53"], host=["db:10.0.0.5"], group=["audio"],
        stop_signal="SIGUSR1", stop_grace_period="30s", health_cmd="true",
        health_retries=2,
    )  # fmt: skip
    assert list(container.env) == ["A=1", "B= spaced value", "FROM_E=1"]
    assert dict(container.labels) == {"tier": "web"}
    assert list(container.command) == ["sh", "-c"]
    assert container.init and container.read_only
    assert dict(container.sysctls) == {"net.core.somaxconn": "512"}
    assert [(u.name, u.soft, u.hard) for u in container.ulimits] == [("nofile", 100, 200)]
    assert list(container.dns_config.nameservers) == ["192.0.2.53"]
    assert list(container.hosts) == ["10.0.0.5 db"] and list(container.groups) == ["audio"]
    assert container.stop_signal == "SIGUSR1"
    assert container.stop_grace_period.seconds == 30
    assert list(container.healthcheck.test) == ["CMD-SHELL", "true"]
    assert container.healthcheck.retries == 2
    with pytest.raises(InvalidArgument, match=r"kernel\.panic"):
        _created(tmp_path, sysctl=["kernel.panic=1"])
    with pytest.raises(InvalidArgument, match="Invalid signal"):
        _created(tmp_path, stop_signal="SIGNOPE")


def test_service_update_flags_remove_then_add() -> None:
    container = types_pb2.ContainerSpec(
        env=["A=1", "B=2"], hosts=["10.0.0.5 db", "10.0.0.6 cache"], groups=["audio"],
        capability_add=["NET_ADMIN"], sysctls={"net.core.somaxconn": "512"},
        ulimits=[types_pb2.Ulimit(name="nofile", soft=1, hard=2)],
        healthcheck=types_pb2.HealthConfig(test=["CMD", "true"], retries=3),
        labels={"old": "1"},
    )  # fmt: skip
    apply_container_updates(
        container,
        {
            "env_add": ["B=3", "C=4"], "env_rm": ["A"], "host_rm": ["db"],
            "host_add": ["web:10.0.0.7"], "group_add": ["video"], "group_rm": ["audio"],
            "cap_drop": ["NET_ADMIN"], "sysctl_rm": ["net.core.somaxconn"],
            "sysctl_add": ["net.ipv4.ip_forward=1"], "ulimit_add": ["nofile=5:6"],
            "ulimit_rm": ["core"], "container_label_rm": ["old"],
            "container_label_add": ["new=2"], "dns_add": ["192.0.2.1"], "args": "a 'b c'",
            "init": True, "hostname": "{{.Service.Name}}", "stop_signal": "HUP",
            "health_interval": "2s",
        },
    )  # fmt: skip
    assert list(container.env) == ["B=3", "C=4"]
    assert list(container.hosts) == ["10.0.0.6 cache", "10.0.0.7 web"]
    assert list(container.groups) == ["video"]
    assert list(container.capability_add) == [] and list(container.capability_drop) == ["NET_ADMIN"]
    assert dict(container.sysctls) == {"net.ipv4.ip_forward": "1"}
    assert [(u.soft, u.hard) for u in container.ulimits] == [(5, 6)]
    assert dict(container.labels) == {"new": "2"}
    assert list(container.dns_config.nameservers) == ["192.0.2.1"]
    assert list(container.args) == ["a", "b c"]
    assert container.init and container.hostname == "{{.Service.Name}}"
    assert container.stop_signal == "HUP"
    assert list(container.healthcheck.test) == ["CMD", "true"]  # kept; interval changed
    assert container.healthcheck.interval_ns == 2 * 10**9 and container.healthcheck.retries == 3
    apply_container_updates(container, {"no_healthcheck": True, "init": False})
    assert list(container.healthcheck.test) == ["NONE"] and not container.init


def _service(**container: object) -> types_pb2.ServiceSpec:
    spec = types_pb2.ServiceSpec()
    spec.annotations.name = "web"
    spec.replicated.replicas = 1
    spec.task.container.CopyFrom(types_pb2.ContainerSpec(image="busybox", **container))  # type: ignore[arg-type]
    return spec


def test_the_manager_refuses_bad_settings_naming_the_field() -> None:
    validate_service_spec(_service(sysctls={"net.core.somaxconn": "1"}, hostname="{{.Task.Slot}}"))
    cases = [
        (_service(sysctls={"vm.swappiness": "1"}), "task.container.sysctls", "vm.swappiness"),
        (_service(ulimits=[types_pb2.Ulimit(name="nofiles", soft=1, hard=1)]),
         "task.container.ulimits", "nofiles"),
        (_service(hosts=["nope db"]), "task.container.hosts", "nope"),
        (_service(stop_signal="SIGFOO"), "task.container.stop_signal", "SIGFOO"),
        (_service(hostname="{{.Service.Nmae}}"), "task.container.hostname", "Nmae"),
        (_service(dns_config=types_pb2.DNSConfig(nameservers=["x"])), "task.container.dns_config",
         "x"),
    ]  # fmt: skip
    for spec, field, named in cases:
        with pytest.raises(InvalidArgument) as caught:
            validate_service_spec(spec)
        assert caught.value.field == field and named in caught.value.message
