"""`pyswarm stack ...` as a user runs it, against the real manager and etcd with fake
agents: names and labels as Swarm gives them, depends_on as start order, a redeploy
that touches only what changed, --prune, and bad files that change nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pyswarm.manager.store import EmbeddedEtcd
from pyswarm.proto import control_pb2, types_pb2
from tests.harness.fleet import NEW, OLD, get_service, with_agents
from tests.harness.manager import RunningManager, manager_config, running_manager
from tests.harness.manager_cli import Cli
from tests.waiting import eventually

STACK = """
services:
  web:
    image: ${WEB_IMAGE}
    deploy: {replicas: 2}
    networks: [front]
    ports: ["8080:80"]
    depends_on: [db]
  db:
    image: OLD
    networks: [back]
    secrets: [db_password]
    configs: [{source: db_conf, target: /etc/db.conf, mode: 0400}]
  worker:
    image: OLD
    networks: [front, back]
    depends_on: {db: {condition: service_started}}
networks:
  front: {labels: {tier: front}}
  back: {}
secrets:
  db_password: {file: ./password.txt}
configs:
  db_conf: {content: "max_connections=10"}
""".replace("OLD", OLD)


def _write(tmp_path: Path, text: str, name: str = "stack.yml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


async def _versions(manager: RunningManager) -> dict[str, int]:
    async with manager.control() as control:
        services = (await control.ListServices(control_pb2.ListServicesRequest())).services
    return {s.spec.annotations.name: s.meta.version for s in services}


async def _secret_versions(manager: RunningManager) -> dict[str, int]:
    async with manager.control() as control:
        secrets = (await control.ListSecrets(control_pb2.ListSecretsRequest())).secrets
    return {s.spec.annotations.name: s.meta.version for s in secrets}


async def _network_names(manager: RunningManager) -> set[str]:
    async with manager.control() as control:
        networks = (await control.ListNetworks(control_pb2.ListNetworksRequest())).networks
    return {n.spec.annotations.name for n in networks}


def test_stack_lifecycle(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def body() -> None:
        async with running_manager(manager_config(tmp_path / "manager", etcd)) as manager:
            cli = Cli(manager, tmp_path / "cli-config")
            cli.env["WEB_IMAGE"] = OLD
            await with_agents(manager, tmp_path, 2, lambda fleet: _scenario(manager, cli, tmp_path))

    asyncio.run(body())


async def _deploy(cli: Cli, *args: str) -> tuple[str, str]:
    code, out, err = await cli("stack", "deploy", "--resolve-image", "never", *args)
    assert code == 0, (out, err)
    return out, err


async def _scenario(manager: RunningManager, cli: Cli, tmp_path: Path) -> None:
    compose = _write(tmp_path, STACK)
    (tmp_path / "password.txt").write_text("s3cret")
    out, err = await _deploy(cli, "-c", compose, "app")
    assert "Creating network app_front" in out and "Creating network app_back" in out
    assert out.index("Creating service app_db") < out.index("Creating service app_web")
    assert "Stack app converged" in err
    versions = await _versions(manager)
    assert set(versions) == {"app_web", "app_db", "app_worker"}
    assert {"app_front", "app_back"} <= await _network_names(manager)

    web = await get_service(manager, "app_web")
    assert web.spec.annotations.labels["com.docker.stack.namespace"] == "app"
    assert web.spec.replicated.replicas == 2
    assert [p.published_port for p in web.spec.endpoint.ports] == [8080]
    db = await get_service(manager, "app_db")
    (secret,) = db.spec.task.container.secrets
    assert secret.secret_name == "app_db_password" and secret.file.name == "db_password"
    (config,) = db.spec.task.container.configs
    assert config.config_name == "app_db_conf" and config.file.name == "/etc/db.conf"
    assert config.file.mode == 0o400
    async with manager.control() as control:
        stored = await control.GetConfig(control_pb2.GetConfigRequest(config_id="app_db_conf"))
        assert stored.spec.data == b"max_connections=10"
        assert stored.spec.annotations.labels["com.docker.stack.namespace"] == "app"
        listed_secrets = (await control.ListSecrets(control_pb2.ListSecretsRequest())).secrets
        assert [s.spec.annotations.name for s in listed_secrets] == ["app_db_password"]
    async with manager.control() as control:
        db_tasks = (await control.ListTasks(control_pb2.ListTasksRequest(service_id=db.id))).tasks
    # depends_on as start order: web was created once db ran its replica.
    running_at = min(t.status.timestamp.ToNanoseconds() for t in db_tasks
                     if t.status.state == types_pb2.RUNNING)  # fmt: skip
    assert web.meta.created_at.ToNanoseconds() >= running_at

    listed = [
        json.loads(line) for line in (await cli.ok("stack", "ls", "--format", "json")).splitlines()
    ]
    assert {"Name": "app", "Services": "3", "Orchestrator": "Swarm"} in listed
    services = (await cli.ok("stack", "services", "app")).splitlines()
    assert len(services) == 4 and "app_web" in "".join(services)
    ps = [
        json.loads(line)
        for line in (await cli.ok("stack", "ps", "app", "--format", "json")).splitlines()
    ]
    assert sorted(row["Name"].split(".")[0] for row in ps) == [
        "app_db", "app_web", "app_web", "app_worker"]  # fmt: skip

    # Unchanged: nothing is touched. One service changed: only it is updated.
    secret_versions = await _secret_versions(manager)
    _, err = await _deploy(cli, "-c", compose, "app")
    assert "no change" in err
    assert await _versions(manager) == versions
    assert await _secret_versions(manager) == secret_versions
    cli.env["WEB_IMAGE"] = NEW
    out, _ = await _deploy(cli, "-c", compose, "app")
    assert "Updating service app_web" in out and "app_db" not in out
    after = await _versions(manager)
    assert after["app_db"] == versions["app_db"] and after["app_worker"] == versions["app_worker"]
    assert after["app_web"] != versions["app_web"]
    assert (await get_service(manager, "app_web")).spec.task.container.image == NEW

    # A bad file changes nothing, and says what is wrong, naming the path.
    bad = _write(tmp_path, STACK.replace("{replicas: 2}", "{replicas: two}"), "bad.yml")
    code, _, err = await cli("stack", "deploy", "-c", bad, "app")
    assert code != 0 and 'services.web.deploy.replicas: must be an integer, got "two"' in err
    assert "Traceback" not in err
    code, _, err = await cli("stack", "deploy", "-c", _write(tmp_path, STACK.replace(
        "networks: [back]", "networks: [nowhere]"), "bad2.yml"), "other")  # fmt: skip
    assert code != 0 and 'network "nowhere" is not defined' in err
    assert await _versions(manager) == after
    assert not any(n.startswith("other_") for n in await _network_names(manager))

    # --prune removes what the file no longer has.
    pruned = STACK.replace("  worker:\n    image: " + OLD + "\n    networks: [front, back]\n"
                           "    depends_on: {db: {condition: service_started}}\n", "")  # fmt: skip
    assert "worker" not in pruned
    out, _ = await _deploy(cli, "-c", _write(tmp_path, pruned, "pruned.yml"), "--prune", "app")
    assert "Removing service app_worker" in out
    assert set(await _versions(manager)) == {"app_web", "app_db"}

    # stack rm: services and networks go.
    await cli.ok("stack", "rm", "app")
    assert await _versions(manager) == {}
    async with manager.control() as control:
        assert not (await control.ListSecrets(control_pb2.ListSecretsRequest())).secrets
        assert not (await control.ListConfigs(control_pb2.ListConfigsRequest())).configs
    await eventually(lambda: _gone(manager), what="the stack's networks removed")
    code, _, err = await cli("stack", "rm", "app")
    assert code != 0 and "nothing found in stack: app" in err


async def _gone(manager: RunningManager) -> bool:
    return not {"app_front", "app_back"} & await _network_names(manager)
