"""Autolock through the CLI, across two managers: `swarm update --autolock`, `swarm
unlock-key [--rotate] [-q]`, `swarm unlock` (key on stdin) and a restart with autolock
off. Real etcd, real managers, the real `pyswarm` CLI in a child process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

from pyswarm.manager.seal import WrongUnlockKey
from pyswarm.manager.seal.keyfile import is_locked, open_key_file, read_key_file
from pyswarm.manager.store import EmbeddedEtcd
from tests.harness.etcd import init_etcd_args
from tests.harness.manager import (
    RunningManager,
    locked_manager,
    manager_config,
    running_manager,
)
from tests.waiting import eventually

KEY_PATTERN = re.compile(r"SWMKEY-1-[A-Za-z0-9_-]{43}")


async def cli(
    manager: RunningManager | tuple[str, Path], *args: str, stdin: str = ""
) -> tuple[int, str, str]:
    """Run `pyswarm ARGS` against `manager`: (exit code, stdout, stderr)."""
    if isinstance(manager, RunningManager):
        address, cert_dir = manager.endpoint.address, manager.config.client_dir
    else:
        address, cert_dir = manager
    env = {
        **os.environ,
        "PYSWARM_HOST": address,
        "PYSWARM_CERT_DIR": str(cert_dir),
        "PYSWARM_CONFIG": str(cert_dir.parent / "cli-config"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pyswarm.cli.main", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def locked_under(state_dir: Path, key: str) -> bool:
    record = read_key_file(state_dir)
    if record is None or not is_locked(record):
        return False
    try:
        open_key_file(record, key)
    except WrongUnlockKey:
        return False
    return True


def in_clear(state_dir: Path) -> bool:
    record = read_key_file(state_dir)
    return record is not None and not is_locked(record)


def test_autolock_rotate_unlock_and_turn_off_from_the_cli(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    async def scenario() -> None:
        m1, m2 = tmp_path / "m1", tmp_path / "m2"
        async with running_manager(manager_config(m1, etcd)) as first:
            code, _, err = await cli(first, "swarm", "unlock-key")
            assert code == 1 and "autolock is not enabled" in err

            code, out, _ = await cli(first, "swarm", "update", "--autolock=true")
            assert code == 0 and "Swarm updated." in out
            match = KEY_PATTERN.search(out)
            assert match, out
            key = match.group(0)
            code, out, _ = await cli(first, "swarm", "unlock-key", "-q")
            assert (code, out.strip()) == (0, key)

            config = await first.further_manager(m2, etcd)
            async with running_manager(config) as second:
                # A further manager locks its copy of the key as the cluster says.
                assert locked_under(m1, key)
                await eventually(lambda: locked_under(m2, key), what="m2's key locked")
                code, out, _ = await cli(second, "swarm", "unlock-key", "--rotate", "-q")
                assert code == 0
                rotated = out.strip()
                assert KEY_PATTERN.fullmatch(rotated) and rotated != key
                assert locked_under(m2, rotated)
                await eventually(lambda: locked_under(m1, rotated), what="m1's key rotated")
                code, _, err = await cli(second, "swarm", "unlock")
                assert code == 1 and "no unlock key given" in err
                code, _, err = await cli(second, "swarm", "unlock", stdin=rotated + "\n")
                assert code == 1 and "this manager is not locked" in err

            # m2 restarts locked: the old key no longer opens it, the rotated one does.
            async with locked_manager(config) as locked:
                target = (locked.endpoint.address, config.client_dir)
                code, _, err = await cli(target, "service", "ls")
                assert code == 1 and "this manager is locked: run swarm unlock" in err
                code, _, err = await cli(target, "swarm", "unlock", stdin=key + "\n")
                assert code == 1 and "does not unlock this manager" in err
                assert "Traceback" not in err and len(err.strip().splitlines()) == 1
                assert not locked.ready.is_set()
                code, _, err = await cli(target, "swarm", "unlock", stdin=rotated + "\n")
                assert code == 0, err
                await eventually(locked.ready.is_set, what="m2 serving once unlocked")
                code, out, _ = await cli(first, "swarm", "update", "--autolock=false")
                assert code == 0 and "Swarm updated." in out and "SWMKEY" not in out
                await eventually(lambda: in_clear(m2), what="m2's key file unlocked")
            assert in_clear(m1)

        # With autolock off, a restart needs no key.
        async with running_manager(manager_config(m1, etcd)) as again:
            code, out, _ = await cli(again, "service", "ls")
            assert code == 0, out

    asyncio.run(scenario())


async def _read_until(stream: asyncio.StreamReader, pattern: re.Pattern[str]) -> str:
    """Lines of `stream` until one matches `pattern` (that line); fails at EOF."""
    seen: list[str] = []
    while True:
        line = (await asyncio.wait_for(stream.readline(), 60)).decode()
        if not line:
            raise AssertionError("output ended before " + pattern.pattern + ":\n" + "".join(seen))
        seen.append(line)
        if pattern.search(line):
            return line


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()


def test_init_autolock_prints_the_key_once_and_a_restart_waits_for_it(
    tmp_path: Path, etcd: EmbeddedEtcd
) -> None:
    state_dir = tmp_path / "manager"
    argv = [
        sys.executable, "-m", "pyswarm.cli.main", "init", "--no-context", "--autolock",
        "--state-dir", str(state_dir), "--advertise-addr", "127.0.0.1",
        "--listen-addr", "127.0.0.1:0", "--join-addr", "127.0.0.1:0",
        *init_etcd_args(etcd), "--metrics-addr", "",
    ]  # fmt: skip

    async def start() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )

    async def scenario() -> None:
        process = await start()
        try:
            assert process.stdout is not None
            key = KEY_PATTERN.search(await _read_until(process.stdout, KEY_PATTERN))
            assert key
        finally:
            await _stop(process)
        process = await start()
        try:
            assert process.stdout is not None
            await _read_until(process.stdout, re.compile("This manager is locked"))
            endpoint = json.loads((state_dir / "manager.json").read_text())
            target = (f"127.0.0.1:{endpoint['listen_port']}", state_dir / "client")
            code, _, err = await cli(target, "swarm", "unlock", stdin=key.group(0))
            assert code == 0, err
            line = await _read_until(process.stdout, re.compile("Manager ready|SWMKEY"))
            assert "Manager ready" in line  # the key is not printed again
            code, _, err = await cli(target, "node", "ls")
            assert code == 0, err
        finally:
            await _stop(process)

    asyncio.run(scenario())
