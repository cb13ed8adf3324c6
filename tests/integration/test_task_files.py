"""A task's secrets and configs inside a real container: written from the RuntimeSpec
into the container's own tmpfs mounts, with their owners and modes, read-only, and
nowhere on the disk (real supervisor, real namespaces)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest

from pyswarm.agent.runtime.container import userns
from pyswarm.agent.runtime.container.logs import read_log
from pyswarm.proto import runtime_pb2
from tests.harness.supervisor import SupervisorHarness

pytestmark = pytest.mark.root

SECRET = b"s3cr3t-bytes-0f-the-task\n"
CONFIG = b"listen 8080\n"


def _files(directory: Path) -> dict[str, Any]:
    return {
        "secret_files": [
            runtime_pb2.TaskFile(target="/run/secrets/db", data=SECRET, uid=0, gid=0, mode=0o444),
            runtime_pb2.TaskFile(
                target="/run/secrets/app/key", data=b"k", uid=65534, gid=65534, mode=0o400
            ),
        ],
        "config_files": [
            runtime_pb2.TaskFile(target="/etc/app.conf", data=CONFIG, uid=0, gid=0, mode=0o444)
        ],
        "files_dir": str(directory),
    }


def run_script(
    sv: SupervisorHarness, script: str, *, user_namespace: bool = False, **fields: Any
) -> tuple[int, str, str]:
    """Run `sh -c script` in a fresh container: (exit code, stdout, stderr)."""
    if user_namespace:
        fields.update(uid_map=userns.default_id_map(), gid_map=userns.default_id_map())
    spec = sv.spec("sh", "-c", script, **fields)
    if user_namespace:
        userns.prepare_writable_layer(
            spec.rootfs.upper_dir, spec.rootfs.work_dir, spec.uid_map, spec.gid_map
        )

    async def scenario() -> int:
        await sv.client.create(spec)
        return (await sv.client.wait(spec.id)).exit_code

    code = asyncio.run(scenario())
    lines = read_log(Path(spec.log_path))
    out = "".join(line.data.decode() for line in lines if line.stream == "stdout")
    err = "".join(line.data.decode() for line in lines if line.stream == "stderr")
    return code, out, err


def _search_disk(base: Path, needle: bytes) -> list[Path]:
    return [path for path in base.rglob("*") if path.is_file() and needle in path.read_bytes()]


SCRIPT = (
    "sha256sum /run/secrets/db /etc/app.conf | cut -d' ' -f1;"
    " stat -c '%a %u %g %n' /run/secrets/db /run/secrets/app/key /etc/app.conf;"
    " grep ' /run/secrets ' /proc/mounts | cut -d' ' -f3,4;"
    " grep ' /etc/app.conf ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1;"
    " echo x > /run/secrets/db 2>/dev/null || echo secret-read-only;"
    " echo x > /etc/app.conf 2>/dev/null || echo config-read-only"
)


def test_secrets_and_configs_are_mounted_from_memory(
    supervisor: SupervisorHarness, tmp_path: Path
) -> None:
    staging = tmp_path / "files"
    staging.mkdir()
    code, out, err = run_script(supervisor, SCRIPT, **_files(staging))
    assert code == 0, err
    lines = out.splitlines()
    # Digests, not the bytes: the container's log is on the disk.
    assert lines[:2] == [hashlib.sha256(SECRET).hexdigest(), hashlib.sha256(CONFIG).hexdigest()]
    assert lines[2:5] == [
        "444 0 0 /run/secrets/db",
        "400 65534 65534 /run/secrets/app/key",
        "444 0 0 /etc/app.conf",
    ]
    fstype, options = lines[5].split(" ")
    assert fstype == "tmpfs"
    assert {"ro", "nosuid", "nodev", "noexec", "mode=755"} <= set(options.split(","))
    assert lines[6:] == ["ro", "secret-read-only", "config-read-only"]
    # Nothing of them on the host: not in the container's dirs, not in the staging dir.
    assert _search_disk(supervisor.base, SECRET.strip()) == []
    assert _search_disk(supervisor.base, CONFIG.strip()) == []
    assert list(staging.iterdir()) == []


def test_a_user_namespace_container_owns_its_files(
    supervisor: SupervisorHarness, tmp_path: Path
) -> None:
    staging = tmp_path / "files"
    staging.mkdir()
    code, out, err = run_script(
        supervisor,
        "stat -c '%a %u %g %n' /run/secrets/db /run/secrets/app/key /etc/app.conf",
        user_namespace=True,
        **_files(staging),
    )
    assert code == 0, err
    assert out.splitlines() == [
        "444 0 0 /run/secrets/db",
        "400 65534 65534 /run/secrets/app/key",
        "444 0 0 /etc/app.conf",
    ]
