"""`pyswarm secret|config ...` and a service's `--secret/--config` flags as a user runs
them, against the real manager (and fake agents): docker's output shapes, a secret's
data in no answer, and a clear one-line error for every bad input."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

from pyswarm.manager.store import EmbeddedEtcd
from tests.harness.fleet import with_agents
from tests.harness.manager import manager_config, running_manager
from tests.harness.manager_cli import Cli
from tests.waiting import eventually

SECRET = b"cli-secret-value-42"
CONFIG = b"worker_processes 2;\n"


def test_secret_and_config_commands(tmp_path: Path, etcd: EmbeddedEtcd) -> None:
    async def body() -> None:
        async with running_manager(manager_config(tmp_path / "manager", etcd)) as manager:
            cli = Cli(manager, tmp_path / "cli-config")
            await with_agents(manager, tmp_path, 1, lambda fleet: _scenario(cli, tmp_path))

    asyncio.run(body())


async def _scenario(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "config").write_bytes(CONFIG)
    (tmp_path / "big").write_bytes(b"x" * (500 * 1024 + 1))
    secret_id = await cli.ok("secret", "create", "-l", "env=test", "db", str(tmp_path / "secret"))
    await cli.ok("config", "create", "app.conf", str(tmp_path / "config"))
    (row,) = [
        json.loads(line) for line in (await cli.ok("secret", "ls", "--format", "json")).splitlines()
    ]
    assert row["ID"] == secret_id.strip() and row["Name"] == "db" and row["Labels"] == "env=test"
    assert (await cli.ok("secret", "ls", "-q", "--filter", "name=d")).split() == [row["ID"]]
    assert (await cli.ok("secret", "ls", "-q", "--filter", "label=env=prod")) == ""
    shown = await cli.ok("secret", "inspect", "db")
    (secret,) = json.loads(shown)
    assert secret["Spec"] == {"Name": "db", "Labels": {"env": "test"}}
    assert SECRET.decode() not in shown and base64.b64encode(SECRET).decode() not in shown
    (config,) = json.loads(await cli.ok("config", "inspect", "app.conf"))
    assert base64.b64decode(config["Spec"]["Data"]) == CONFIG
    assert "Name:            db" in await cli.ok("secret", "inspect", "--pretty", "db")
    code, _, err = await cli("secret", "create", "big", str(tmp_path / "big"))
    assert code != 0 and "500 KiB" in err and "Traceback" not in err
    code, _, err = await cli("secret", "create", "db", str(tmp_path / "secret"))
    assert code != 0 and "db" in err
    code, _, err = await cli(
        "service", "create", "-d", "--name", "web", "--secret", "target=x", "busybox"
    )
    assert code != 0 and err.strip().endswith("source is required in --secret 'target=x'")
    code, _, err = await cli(
        "service", "create", "-d", "--name", "web", "--secret", "nope", "busybox"
    )
    assert code != 0 and "secret not found: nope" in err
    assert (await cli.ok("service", "ls", "-q")) == ""

    await cli.ok(
        "service", "create", "-d", "--name", "web",
        "--secret", "source=db,target=pw,uid=7,mode=0400", "--config", "app.conf",
        "busybox", "sleep", "1000",
    )  # fmt: skip
    spec = (await cli.inspect("web"))["spec"]["task"]["container"]
    assert spec["secrets"][0]["secretName"] == "db"
    assert spec["secrets"][0]["file"] == {"name": "pw", "uid": "7", "gid": "0", "mode": 0o400}
    assert spec["configs"][0]["file"]["name"] == "/app.conf"
    code, _, err = await cli("config", "rm", "app.conf")
    assert code != 0 and "in use by the following service(s): web" in err

    await cli.ok(
        "service", "update", "-d", "--secret-rm", "db",
        "--config-add", "source=app.conf,target=/etc/app.conf", "web",
    )  # fmt: skip
    spec = (await cli.inspect("web"))["spec"]["task"]["container"]
    assert "secrets" not in spec
    assert [c["file"]["name"] for c in spec["configs"]] == ["/etc/app.conf"]
    pretty = await cli.ok("service", "inspect", "--pretty", "web")
    assert " Configs:\n  Target:\t/etc/app.conf\n   Source:\tapp.conf" in pretty

    async def secret_removed() -> bool:  # once the old task is replaced
        code, _, err = await cli("secret", "rm", "db")
        assert code == 0 or "in use" in err, err
        return code == 0

    await eventually(secret_removed, timeout=60, what="the unused secret removed")
    await cli.ok("service", "rm", "web")

    async def config_removed() -> bool:
        return (await cli("config", "rm", "app.conf"))[0] == 0

    await eventually(config_removed, timeout=60, what="the config removed with its service")
    assert (await cli.ok("config", "ls", "-q")) == ""
