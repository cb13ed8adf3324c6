"""One canonical shape for every compose value that has several spellings, so that
merging files, checking references and converting to service specs each read one form:

environment/labels/sysctls -> {key: value}, command/entrypoint -> argv lists, ports ->
long syntax (ranges expanded), volumes -> long syntax, networks -> {name: {aliases}},
secrets/configs -> long syntax, depends_on -> {name: {condition}}, healthcheck.test ->
["CMD", ...] / ["CMD-SHELL", cmd] / ["NONE"], dns/dns_search/tmpfs/env_file -> lists,
ulimits -> {name: {soft, hard}}, extra_hosts -> ["host:ip"].
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from pyswarm.stack.errors import ComposeError, child_path

_PORT = re.compile(
    r"^(?:(?P<ip>\[[^\]]+\]|[^:\[\]]+):)??"  # host ip (only with a published part)
    r"(?:(?P<published>\d+(?:-\d+)?)?:)?"
    r"(?P<target>\d+(?:-\d+)?)(?:/(?P<proto>tcp|udp))?$"
)


def key_values(value: Any) -> dict[str, str | None]:
    """A list of KEY=VALUE (KEY alone: no value) or a mapping, as a mapping of text."""
    if isinstance(value, dict):
        return {str(k): None if v is None else _text(v) for k, v in value.items()}
    result: dict[str, str | None] = {}
    for item in value or []:
        key, sep, val = str(item).partition("=")
        result[key] = val if sep else None
    return result


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def argv(value: Any, path: str) -> list[str]:
    """A string is split as a shell would split words (no expansion), as docker does."""
    if isinstance(value, list):
        return [str(v) for v in value]
    try:
        return shlex.split(str(value))
    except ValueError as err:
        raise ComposeError(f"cannot split command: {err}", field=path) from None


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _port_range(text: str, path: str) -> list[int]:
    start, _, end = text.partition("-")
    first, last = int(start), int(end or start)
    if not 0 < first <= last <= 65535:
        raise ComposeError(f"invalid port range {text!r}", field=path)
    return list(range(first, last + 1))


def ports(items: list[Any], path: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n, item in enumerate(items):
        here = child_path(path, n)
        if isinstance(item, dict):
            port = {"target": item["target"], "protocol": item.get("protocol", "tcp"),
                    "mode": item.get("mode", "ingress")}  # fmt: skip
            if item.get("published") not in (None, ""):
                published = str(item["published"])
                if not published.isdigit() or not 0 < int(published) <= 65535:
                    raise ComposeError(f"invalid published port {published!r}", field=here)
                port["published"] = int(published)
            if item.get("host_ip"):
                port["host_ip"] = item["host_ip"]
            out.append(port)
            continue
        match = _PORT.match(str(item))
        if not match:
            raise ComposeError(f"invalid port {item!r}", field=here)
        targets = _port_range(match["target"], here)
        bound = _port_range(match["published"], here) if match["published"] else []
        if bound and len(bound) != len(targets):
            raise ComposeError(f"port ranges of different sizes in {item!r}", field=here)
        for i, target in enumerate(targets):
            port = {"target": target, "protocol": match["proto"] or "tcp", "mode": "ingress"}
            if bound:
                port["published"] = bound[i]
            if match["ip"]:
                port["host_ip"] = match["ip"].strip("[]")
            out.append(port)
    return out


def _is_path(source: str) -> bool:
    return source.startswith(("/", ".", "~"))


def volumes(items: list[Any], path: str, base: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n, item in enumerate(items):
        here = child_path(path, n)
        if isinstance(item, dict):
            mount = dict(item)
        else:
            parts = str(item).split(":")
            if len(parts) == 1:
                mount = {"type": "volume", "target": parts[0]}
            elif len(parts) in (2, 3):
                source, target = parts[0], parts[1]
                kind = "bind" if _is_path(source) else "volume"
                mount = {"type": kind, "source": source, "target": target}
                options = parts[2].split(",") if len(parts) == 3 else []
                for option in options:
                    if option == "ro":
                        mount["read_only"] = True
                    elif option in ("rw", "z", "Z", "nocopy") or option.endswith("private"):
                        if option == "nocopy":
                            mount["volume"] = {"nocopy": True}
                    elif option.endswith(("shared", "slave")):
                        mount["bind"] = {"propagation": option}
                    else:
                        raise ComposeError(f"invalid mode {option!r} in {item!r}", field=here)
            else:
                raise ComposeError(f"invalid volume specification {item!r}", field=here)
        target = str(mount.get("target", ""))
        if not target.startswith("/"):
            raise ComposeError(f"target must be an absolute path, got {target!r}", field=here)
        if mount["type"] == "bind":
            source = str(mount.get("source", ""))
            if not source:
                raise ComposeError("a bind mount needs a source", field=here)
            mount["source"] = str(_host_path(source, base))
        out.append(mount)
    return out


def _host_path(source: str, base: Path) -> Path:
    """Relative bind sources are relative to the compose file, `~` is the user's home."""
    expanded = Path(source).expanduser()
    return expanded if expanded.is_absolute() else (base / expanded).resolve()


def networks(value: Any) -> dict[str, dict[str, Any]]:
    if isinstance(value, list):
        return {str(name): {} for name in value}
    return {str(k): dict(v or {}) for k, v in (value or {}).items()}


def file_references(items: list[Any]) -> list[dict[str, Any]]:
    return [dict(item) if isinstance(item, dict) else {"source": str(item)} for item in items]


def depends_on(value: Any) -> dict[str, dict[str, Any]]:
    if isinstance(value, list):
        return {str(name): {"condition": "service_started"} for name in value}
    return {
        str(k): {"condition": (v or {}).get("condition", "service_started")}
        for k, v in (value or {}).items()
    }


def healthcheck(value: dict[str, Any]) -> dict[str, Any]:
    check = dict(value)
    if check.pop("disable", False):
        return {"test": ["NONE"]}
    test = check.get("test")
    if isinstance(test, str):
        check["test"] = ["CMD-SHELL", test]
    return check


def ulimits(value: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {
        name: dict(limit) if isinstance(limit, dict) else {"soft": limit, "hard": limit}
        for name, limit in value.items()
    }


def extra_hosts(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [f"{host}:{ip}" for host, ip in value.items()]
    return [str(v).replace("=", ":", 1) if "=" in str(v) else str(v) for v in value]


_SERVICE_RULES: dict[str, Any] = {
    "environment": key_values, "labels": key_values, "sysctls": key_values,
    "dns": as_list, "dns_search": as_list, "tmpfs": as_list,
    "networks": networks, "secrets": file_references, "configs": file_references,
    "depends_on": depends_on, "healthcheck": healthcheck, "ulimits": ulimits,
    "extra_hosts": extra_hosts,
}  # fmt: skip


def service(name: str, value: dict[str, Any], base: Path) -> dict[str, Any]:
    path = f"services.{name}"
    out = dict(value)
    for key, rule in _SERVICE_RULES.items():
        if key in out:
            out[key] = rule(out[key])
    for key in ("command", "entrypoint"):
        if key in out:
            out[key] = argv(out[key], child_path(path, key))
    if "env_file" in out:
        files = out["env_file"] if isinstance(out["env_file"], list) else [out["env_file"]]
        out["env_file"] = [
            {"path": str(_host_path(f["path"] if isinstance(f, dict) else f, base)),
             "required": f.get("required", True) if isinstance(f, dict) else True}
            for f in files
        ]  # fmt: skip
    if "ports" in out:
        out["ports"] = ports(out["ports"], child_path(path, "ports"))
    if "volumes" in out:
        out["volumes"] = volumes(out["volumes"], child_path(path, "volumes"), base)
    deploy = out.get("deploy")
    if isinstance(deploy, dict) and "labels" in deploy:
        out["deploy"] = {**deploy, "labels": key_values(deploy["labels"])}
    return out


def top_level_object(value: Any, base: Path) -> dict[str, Any]:
    """A networks/volumes/secrets/configs entry: `external.name` folded into `name`,
    labels as a mapping, `file` made absolute."""
    out = dict(value or {})
    external = out.get("external")
    if isinstance(external, dict):
        out["external"] = True
        if external.get("name"):
            out.setdefault("name", external["name"])
    if "labels" in out:
        out["labels"] = key_values(out["labels"])
    if "file" in out:
        out["file"] = str(_host_path(str(out["file"]), base))
    return out


def document(value: dict[str, Any], base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in value.items() if k not in ("version", "name")}
    out["services"] = {n: service(n, s, base) for n, s in value.get("services", {}).items()}
    for section in ("networks", "volumes", "secrets", "configs"):
        if section in value:
            out[section] = {
                name: top_level_object(item, base) for name, item in value[section].items()
            }
    return out
