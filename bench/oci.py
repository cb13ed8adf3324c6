"""The OCI runtimes used as anchors (runc, crun): a bundle over the busybox rootfs and
the commands that run, start detached, and remove a container from it."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.rootfs import unpack

# runc's own state root would be shared with anything else on the host: keep ours apart.
_STATE_DIR_NAME = "oci-state"


class OciRuntime:
    """One runtime binary with a private state root under `work`."""

    def __init__(self, name: str, work: Path) -> None:
        self.name = name
        self.binary = shutil.which(name)
        self.state_root = work / _STATE_DIR_NAME / name

    def command(self, *args: str) -> list[str]:
        if self.binary is None:
            raise FileNotFoundError(f"{self.name} is not installed")
        return [self.binary, "--root", str(self.state_root), *args]

    def make_bundle(
        self,
        bundle: Path,
        tar_path: Path,
        args: list[str],
        seccomp: dict[str, Any] | None = None,
    ) -> Path:
        """`runc spec` adjusted: no terminal, `args`, and the default namespaces
        (pid, net with only lo, ipc, uts, mount), masked and read-only paths, device
        rules and read-only rootfs kept; `seccomp` as its linux.seccomp section."""
        bundle.mkdir(parents=True, exist_ok=True)
        unpack(tar_path, bundle / "rootfs")
        config = bundle / "config.json"
        config.unlink(missing_ok=True)
        subprocess.run(self.command("spec", "--bundle", str(bundle)), check=True)
        spec = json.loads(config.read_text())
        spec["process"]["terminal"] = False
        spec["process"]["args"] = args
        if seccomp is not None:
            spec["linux"]["seccomp"] = seccomp
        config.write_text(json.dumps(spec, indent=2))
        return bundle

    def run(self, bundle: Path, container_id: str) -> subprocess.CompletedProcess[bytes]:
        """Run to completion in the foreground; runc removes the container on exit."""
        return subprocess.run(
            self.command("run", "--bundle", str(bundle), container_id),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )

    def run_detached(self, bundle: Path, container_id: str, log: Path) -> subprocess.Popen[bytes]:
        """`run -d`: returns once the container's process runs. The container inherits
        runc's stdio, so its output goes to `log`, never to a pipe we would wait on."""
        with open(log, "ab") as output:
            return subprocess.Popen(
                self.command("run", "-d", "--bundle", str(bundle), container_id),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
            )

    def status(self, container_id: str) -> str:
        result = subprocess.run(
            self.command("state", container_id), capture_output=True, check=False
        )
        if result.returncode != 0:
            return "absent"
        return str(json.loads(result.stdout).get("status", "unknown"))

    def pid(self, container_id: str) -> int:
        result = subprocess.run(self.command("state", container_id), capture_output=True)
        return int(json.loads(result.stdout).get("pid", 0)) if result.returncode == 0 else 0

    def remove(self, container_id: str) -> None:
        """Kill and delete; quiet when it is already gone."""
        with contextlib.suppress(OSError):
            subprocess.run(
                self.command("delete", "--force", container_id),
                capture_output=True,
                check=False,
                timeout=30,
            )

    def remove_all(self) -> None:
        """Every container left in our private state root (after a failure)."""
        if not self.state_root.is_dir():
            return
        for entry in self.state_root.iterdir():
            self.remove(entry.name)

    def probe(self, bundle: Path, container_id: str) -> str | None:
        """None when a foreground run works here, else the runtime's own error."""
        if self.binary is None:
            return f"{self.name} is not installed"
        result = self.run(bundle, container_id)
        self.remove(container_id)
        if result.returncode == 0:
            return None
        message = (result.stderr or result.stdout).decode(errors="replace").strip()
        return message.splitlines()[-1] if message else f"exit status {result.returncode}"
