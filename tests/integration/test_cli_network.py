"""`pyswarm network create|ls|inspect|rm|prune` as a user runs them, against the real
manager: docker's output shapes, and a clear one-line error for every bad input."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pyswarm.manager.store import EmbeddedEtcd
from pyswarm.proto import control_pb2
from tests.harness.fleet import with_agents
from tests.harness.manager import RunningManager, manager_config, replicated_spec, running_manager
from tests.harness.manager_cli import Cli
from tests.waiting import eventually


async def _networks(cli: Cli) -> list[str]:
    return (await cli.ok("network", "ls", "--format", "json")).splitlines()


async def _names(cli: Cli) -> set[str]:
    return {json.loads(line)["Name"] for line in await _networks(cli)}


def test_network_commands_and_docker_shapes(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def body() -> None:
        async with running_manager(manager_config(tmp_path / "manager", etcd)) as manager:
            cli = Cli(manager, tmp_path / "cli-config")
            await with_agents(manager, tmp_path, 1, lambda fleet: _scenario(manager, cli))

    asyncio.run(body())


async def _scenario(manager: RunningManager, cli: Cli) -> None:
    await eventually(lambda: _has_ingress(cli), what="the ingress network")
    create = [
        "network", "create", "--subnet", "10.77.0.0/24", "--gateway", "10.77.0.254",
        "--ip-range", "10.77.0.128/25", "--attachable", "--label", "tier=back",
        "--opt", "encrypted", "back",
    ]  # fmt: skip
    network_id = (await cli.ok(*create)).strip()
    assert len(network_id) >= 12
    (shown,) = json.loads(await cli.ok("network", "inspect", "back"))
    assert shown["Name"] == "back" and shown["Id"] == network_id
    assert shown["Scope"] == "swarm" and shown["Driver"] == "overlay"
    assert shown["IPAM"]["Config"] == [
        {"Subnet": "10.77.0.0/24", "Gateway": "10.77.0.254", "IPRange": "10.77.0.128/25"}
    ]
    assert shown["Attachable"] is True and shown["Internal"] is False
    assert shown["Ingress"] is False and shown["Labels"] == {"tier": "back"}
    assert "encrypted" in shown["Options"]
    assert {"back", "ingress"} <= await _names(cli)
    quiet = (await cli.ok("network", "ls", "-q", "--filter", "name=back")).split()
    assert quiet == [network_id[:12]]
    labelled = (await cli.ok("network", "ls", "-q", "--filter", "label=tier=back")).split()
    assert labelled == [network_id[:12]]

    # Every bad input: non-zero, one line naming what is wrong, nothing changed.
    before = await _names(cli)
    for args, words in BAD_CREATES:
        code, _, err = await cli("network", "create", *args)
        assert code != 0, args
        assert len(err.strip().splitlines()) == 1 and words in err, (args, err)
        assert "Traceback" not in err
    assert await _names(cli) == before

    # In use: refused naming the service; rm after the service is gone.
    spec = replicated_spec("api", 1)
    spec.task.networks.add(target="back")
    async with manager.control() as control:
        await control.CreateService(control_pb2.CreateServiceRequest(spec=spec), timeout=10)
    code, _, err = await cli("network", "rm", "back")
    assert code != 0 and "in use by service api" in err
    code, _, err = await cli("network", "rm", "ingress")
    assert code == 0 or "ingress" in err
    await cli.ok("service", "rm", "api")
    await eventually(lambda: _removed(cli, "back"), what="back removed")

    await cli.ok("network", "create", "spare")
    pruned = await cli.ok("network", "prune", "-f")
    assert "spare" in pruned and "ingress" not in pruned
    assert await _names(cli) == {"ingress"}
    code, _, err = await cli("network", "inspect", "spare")
    assert code != 0 and "spare" in err


BAD_CREATES = [
    (("--subnet", "10.300.0.0/16", "x"), "--subnet"),
    (("--subnet", "10.1.0.0/16", "--gateway", "10.2.0.1", "x"), "gateway"),
    (("--subnet", "10.1.0.0/16", "--ip-range", "10.2.0.0/24", "x"), "ip-range"),
    (("--gateway", "10.2.0.1", "x"), "--subnet"),
    (("--subnet", "10.77.0.0/16", "x"), "network back"),
    (("-d", "bridge", "x"), "driver"),
    (("back",), "back"),
    (("bad name!",), "name"),
]


async def _has_ingress(cli: Cli) -> bool:
    return "ingress" in await _names(cli)


async def _removed(cli: Cli, name: str) -> bool:
    code, _, _ = await cli("network", "rm", name)
    return code == 0 and name not in await _names(cli)


def test_services_on_networks_through_the_cli(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def body() -> None:
        async with running_manager(manager_config(tmp_path / "manager", etcd)) as manager:
            cli = Cli(manager, tmp_path / "cli-config")
            await with_agents(manager, tmp_path, 2, lambda fleet: _services(cli))

    asyncio.run(body())


async def _services(cli: Cli) -> None:
    await eventually(lambda: _has_ingress(cli), what="the ingress network")
    front = (await cli.ok("network", "create", "front")).strip()
    back = (await cli.ok("network", "create", "back")).strip()
    await cli.ok(
        "service", "create", "--name", "web", "--replicas", "2", "--no-resolve-image",
        "--network", "front", "--network", "name=back,alias=db,alias=store",
        "-p", "8080:80", "busybox", "httpd", "-f",
    )  # fmt: skip
    shown = await cli.inspect("web")
    targets = [n["target"] for n in shown["spec"]["task"]["networks"]]
    assert targets == [front, back]
    assert shown["spec"]["task"]["networks"][1]["aliases"] == ["db", "store"]
    vips = {v["networkId"] for v in shown["endpoint"]["virtualIps"]}
    ingress = json.loads(await cli.ok("network", "inspect", "ingress"))[0]["Id"]
    assert vips == {front, back, ingress}
    code, _, err = await cli("network", "rm", "ingress")
    assert code != 0 and "in use by service web" in err
    pretty = await cli.ok("service", "inspect", "--pretty", "web")
    assert "VirtualIPs:" in pretty and "Endpoint Mode:\tvip" in pretty

    # The same ingress port for another service: refused, naming the one that has it.
    code, _, err = await cli(
        "service", "create", "--name", "other", "--no-resolve-image", "-p", "8080:80",
        "busybox",
    )  # fmt: skip
    assert code != 0 and "service web" in err
    code, _, err = await cli(
        "service", "create", "--name", "lost", "--no-resolve-image", "--network", "nowhere",
        "busybox",
    )  # fmt: skip
    assert code != 0 and "nowhere" in err and len(err.strip().splitlines()) == 1
    code, _, err = await cli(
        "service", "create", "--name", "bad", "--no-resolve-image", "--endpoint-mode", "rr",
        "busybox",
    )  # fmt: skip
    assert code != 0 and "--endpoint-mode" in err

    await cli.ok(
        "service", "update", "--network-rm", "back", "--network-add", "name=back,alias=x",
        "--publish-rm", "80", "--publish-add", "mode=host,target=81,published=9090", "web",
    )  # fmt: skip
    shown = await cli.inspect("web")
    assert [n.get("aliases") for n in shown["spec"]["task"]["networks"]] == [None, ["x"]]
    ports = shown["spec"]["endpoint"]["ports"]
    assert [(p["targetPort"], p.get("publishMode")) for p in ports] == [(81, "HOST")]
    await eventually(lambda: _vips_are(cli, {front, back}), what="the ingress VIP released")
    code, _, err = await cli("service", "update", "--network-rm", "nowhere", "web")
    assert code != 0 and "nowhere" in err


async def _vips_are(cli: Cli, expected: set[str]) -> bool:
    shown = await cli.inspect("web")
    return {v["networkId"] for v in shown["endpoint"].get("virtualIps", [])} == expected
