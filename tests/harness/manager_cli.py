"""The pyswarm CLI as a user runs it (a real process) aimed at one in-process manager."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.harness.manager import RunningManager


class Cli:
    """The pyswarm CLI aimed at one manager."""

    def __init__(self, manager: RunningManager, config_dir: Path) -> None:
        self.env = {
            **os.environ,
            "PYSWARM_HOST": manager.endpoint.address,
            "PYSWARM_CERT_DIR": str(manager.config.client_dir),
            "PYSWARM_CONFIG": str(config_dir),
        }

    async def __call__(self, *args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pyswarm.cli.main", *args, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def ok(self, *args: str) -> str:
        code, out, err = await self(*args)
        assert code == 0, f"pyswarm {' '.join(args)}: {out!r} {err!r}"
        return out

    async def inspect(self, service: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(await self.ok("service", "inspect", service))
        return found[0]
