"""A real Prometheus (Debian's `prometheus`) for a lab, as an operator would run one.

Its configuration is deploy/prometheus.yml rendered for the lab: every MANAGER
placeholder becomes each lab manager's metrics address (a static target per manager,
an http_sd entry per manager, so agents are found through /sd as the file intends),
the rules file is deploy/prometheus-rules.yml, and the intervals are shortened so a
lab shows data within seconds rather than a minute. Prometheus runs in a lab host's
network namespace and listens on that host's lab address only; its data and log stay
under the lab's directory, which `lab down` removes.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from pyswarm.lab.errors import LabError

BINARY = "prometheus"
PORT = 9090
PLACEHOLDER = "MANAGER"
LAB_INTERVAL = "5s"  # scrape, evaluation and discovery refresh in a lab
READY_TIMEOUT = 60.0
DEPLOY_DIR = Path(__file__).resolve().parents[1] / "deploy"
CONFIG_TEMPLATE = "prometheus.yml"
RULES = "prometheus-rules.yml"

#: Starts argv (inside the lab host) with output to the log and the given environment;
#: returns the pid of the new process group's leader.
Spawn = Callable[[list[str], Path, dict[str, str]], int]


_PLACEHOLDER_ADDRESS = re.compile(rf"{PLACEHOLDER}(:\d+)?")


def _expand(text: str, managers: list[str]) -> list[str]:
    """`text` once per manager, its MANAGER[:PORT] replaced by that manager's host:port."""
    return [_PLACEHOLDER_ADDRESS.sub(manager, text) for manager in managers]


def render_config(
    template: dict[str, Any], managers: list[str], rules: Path, interval: str = LAB_INTERVAL
) -> dict[str, Any]:
    """deploy/prometheus.yml (parsed) for these managers (their metrics host:port)."""
    if not managers:
        raise LabError("prometheus needs at least one manager to scrape")
    config = copy.deepcopy(template)
    config["global"] = {
        **config.get("global", {}),
        "scrape_interval": interval,
        "evaluation_interval": interval,
    }
    config["rule_files"] = [str(rules)]
    placeholders = 0
    jobs = []
    for job in config.get("scrape_configs", []):
        for static in job.get("static_configs", []):
            targets = []
            for target in static.get("targets", []):
                if PLACEHOLDER in target:
                    placeholders += 1
                    targets += _expand(target, managers)
                else:
                    targets.append(target)
            static["targets"] = targets
        discovery = []
        for sd in job.get("http_sd_configs", []):
            if PLACEHOLDER not in sd.get("url", ""):
                discovery.append(sd)
                continue
            placeholders += 1
            for url in _expand(sd["url"], managers):
                discovery.append({**sd, "url": url, "refresh_interval": interval})
        if discovery:
            job["http_sd_configs"] = discovery
        jobs.append(job)
    if not placeholders:
        raise LabError(f"{CONFIG_TEMPLATE} has no {PLACEHOLDER} placeholder to fill in")
    config["scrape_configs"] = jobs
    return config


def _answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # lab only
    try:
        with opener.open(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class LabPrometheus:
    """Prometheus on `address` (host:port), its files under `root`."""

    def __init__(self, root: Path, address: str, *, deploy: Path = DEPLOY_DIR) -> None:
        self.root = root
        self.address = address
        self.deploy = deploy
        self.log_path = root / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def write_config(self, managers: list[str]) -> Path:
        template_path = self.deploy / CONFIG_TEMPLATE
        try:
            template = yaml.safe_load(template_path.read_text())
            rules_text = (self.deploy / RULES).read_text()
        except OSError as err:
            raise LabError(f"prometheus: cannot read the deploy files: {err}") from err
        self.root.mkdir(parents=True, exist_ok=True)
        rules = self.root / RULES
        rules.write_text(rules_text)
        config = self.root / CONFIG_TEMPLATE
        config.write_text(yaml.safe_dump(render_config(template, managers, rules)))
        return config

    def argv(self, config: Path) -> list[str]:
        binary = shutil.which(BINARY)
        if binary is None:
            raise LabError(f"{BINARY} is not installed (scripts/setup.sh installs it)")
        return [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.root / 'data'}",
            f"--web.listen-address={self.address}",
        ]

    def launch(self, spawn: Spawn, managers: list[str]) -> int:
        """Start Prometheus (without waiting for it); its pid."""
        argv = self.argv(self.write_config(managers))
        # Scrapes go to lab addresses only: never through a proxy the caller has set.
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        return spawn(argv, self.log_path, env)

    def wait_ready(self, alive: Callable[[], bool]) -> None:
        """Return once /-/ready answers; LabError when it exits or takes too long."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not _answers(f"{self.url}/-/ready"):
            if not alive():
                raise LabError(f"prometheus exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise LabError(f"prometheus on {self.address} did not answer: {self.log_tail()}")
            time.sleep(0.1)  # polling a process we started; _answers decides

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"
