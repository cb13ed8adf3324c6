"""pyswarm as the VM image gets it: a wheel built from this checkout, beside a
wheelhouse of its dependencies, so the image installs offline (pip --no-index).

The wheel's digest covers what is in it (names and bytes), not the zip's timestamps:
an unchanged checkout gives the same digest, so the cached image is kept.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from pyswarm.lab.errors import LabError


def checkout_root() -> Path:
    """The pyswarm checkout this pyswarm runs from (the VM lab builds from it)."""
    import pyswarm.lab

    root = Path(pyswarm.lab.__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file() or not (root / "deploy" / "install.sh").is_file():
        raise LabError(
            "lab up --vms runs from a pyswarm checkout (it builds the VMs' pyswarm from"
            f" pyproject.toml and installs it with deploy/install.sh); {root} is not one"
        )
    return root


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def build_wheel(checkout: Path, out_dir: Path) -> Path:
    """pyswarm's wheel from the checkout, in out_dir (emptied first)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    args = ["wheel", "-q", "--no-deps", "-w", str(out_dir), str(checkout)]
    # The venv's own setuptools first (quick, offline); an isolated build if it cannot.
    result = _pip(*args[:2], "--no-build-isolation", *args[2:])
    if result.returncode != 0:
        result = _pip(*args)
    shutil.rmtree(checkout / "build", ignore_errors=True)  # setuptools' scratch space
    wheels = sorted(out_dir.glob("pyswarm-*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise LabError(f"building pyswarm's wheel failed: {result.stderr.strip()[-400:]}")
    return wheels[0]


def wheel_digest(wheel: Path) -> str:
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            digest.update(name.encode() + b"\0" + archive.read(name) + b"\0")
    return digest.hexdigest()


def _requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode().splitlines()
    return sorted(
        line for line in lines if line.startswith("Requires-Dist:") and "extra ==" not in line
    )


def fill_wheelhouse(wheel: Path, wheelhouse: Path) -> None:
    """pyswarm's dependencies as wheels in wheelhouse; fetched again only when the
    wheel's requirements changed."""
    stamp = wheelhouse / "requirements.txt"
    wanted = "\n".join(_requirements(wheel)) + "\n"
    if stamp.is_file() and stamp.read_text() == wanted:
        return
    wheelhouse.mkdir(parents=True, exist_ok=True)
    result = _pip("wheel", "-q", "-w", str(wheelhouse), str(wheel))
    if result.returncode != 0:
        raise LabError(f"fetching pyswarm's dependencies failed: {result.stderr.strip()[-400:]}")
    (wheelhouse / wheel.name).unlink(missing_ok=True)  # pyswarm itself travels apart
    stamp.write_text(wanted)
