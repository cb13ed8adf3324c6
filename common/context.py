"""Where the CLI's manager commands go, found the way docker and kubectl find theirs:
the --host flag, then $PYSWARM_HOST, then the current context.

Shared by the CLI and the lab (which writes the lab's context and asks its manager),
so it lives here rather than in either of them.

`init`, `join` and `lab up` write a context (manager address + the directory holding
the client certificate) and make it current, so that after `pyswarm lab up` a plain
`pyswarm service ls` talks to the lab. With several managers (HA) the context lists
them all (and --host / $PYSWARM_HOST may list several, comma-separated): the CLI
connects to the first that answers (manager_client.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pyswarm.common.errors import InvalidArgument
from pyswarm.common.json_files import write_json

HOST_ENV = "PYSWARM_HOST"
CERT_DIR_ENV = "PYSWARM_CERT_DIR"
CONFIG_ENV = "PYSWARM_CONFIG"


@dataclass(frozen=True)
class Context:
    name: str
    manager: str  # host:port of the manager's main (mutual TLS) port; several: a,b,c
    cert_dir: str  # node.key, node.crt, ca.crt of a manager-role client identity
    agent_socket: str = ""
    #: Every manager's main port (HA managers): the CLI fails over among them.
    managers: list[str] = field(default_factory=list)

    @property
    def targets(self) -> list[str]:
        """The managers to try, in order: `manager` first, then the others."""
        listed = [m.strip() for m in self.manager.split(",") if m.strip()]
        return list(dict.fromkeys([*listed, *self.managers]))


def config_dir() -> Path:
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "pyswarm"


def _path() -> Path:
    return config_dir() / "contexts.json"


def _load() -> dict[str, object]:
    try:
        data = json.loads(_path().read_text())
    except FileNotFoundError:
        return {"current": "", "contexts": {}}
    except (OSError, ValueError) as err:
        raise InvalidArgument(f"cannot read {_path()}: {err}", field="context") from None
    if not isinstance(data, dict):
        return {"current": "", "contexts": {}}
    return data


def save_context(context: Context, *, make_current: bool = True) -> None:
    data = _load()
    contexts = data.setdefault("contexts", {})
    assert isinstance(contexts, dict)
    contexts[context.name] = asdict(context)
    if make_current:
        data["current"] = context.name
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)


def remove_context(name: str) -> None:
    data = _load()
    contexts = data.get("contexts", {})
    if isinstance(contexts, dict) and name in contexts:
        del contexts[name]
        if data.get("current") == name:
            data["current"] = ""
        write_json(_path(), data)


def list_contexts() -> tuple[str, list[Context]]:
    data = _load()
    contexts = data.get("contexts", {})
    found = []
    if isinstance(contexts, dict):
        for value in contexts.values():
            if isinstance(value, dict):
                found.append(Context(**value))
    return str(data.get("current", "")), found


_host_override: str | None = None


def set_host(host: str | None) -> None:
    global _host_override
    _host_override = host


def current() -> Context:
    """The manager to talk to; a clear error when none is configured."""
    host = _host_override or os.environ.get(HOST_ENV)
    current_name, contexts = list_contexts()
    by_name = {c.name: c for c in contexts}
    chosen = by_name.get(current_name)
    if host:
        cert_dir = os.environ.get(CERT_DIR_ENV) or (chosen.cert_dir if chosen else "")
        return Context(name="(flag)", manager=host, cert_dir=cert_dir)
    if chosen is None:
        raise InvalidArgument(
            "no manager configured: run `pyswarm init`, `pyswarm lab up`, or pass --host",
            field="--host",
        )
    if os.environ.get(CERT_DIR_ENV):
        return Context(
            chosen.name,
            chosen.manager,
            os.environ[CERT_DIR_ENV],
            chosen.agent_socket,
            chosen.managers,
        )
    return chosen
