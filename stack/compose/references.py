"""Checks that need the whole merged file set: every network, volume, secret and config
a service names is defined, depends_on names services and has no cycle, a published
port is published once, each service has an image, each file a secret or config reads
exists. All problems are reported together; nothing is deployed until there are none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyswarm.stack.errors import ComposeError, child_path

# A stack always has this network, made for services that name none (Swarm's STACK_default).
DEFAULT_NETWORK = "default"
# The largest file a secret (Swarm's 500 KiB) or config may hold.
FILE_LIMITS = {"secrets": 500 * 1024, "configs": 1000 * 1024}


def _missing(kind: str, name: str, path: str) -> ComposeError:
    singular = kind[:-1]
    return ComposeError(f'{singular} "{name}" is not defined in top-level {kind}', field=path)


def _service_references(
    name: str, service: dict[str, Any], doc: dict[str, Any]
) -> list[ComposeError]:
    path = f"services.{name}"
    errors: list[ComposeError] = []
    if not service.get("image"):
        why = " (build is ignored by stacks)" if "build" in service else ""
        errors.append(ComposeError(f"no image: a stack deploys images{why}", field=path))
    networks = doc.get("networks", {})
    for network in service.get("networks", {}):
        if network != DEFAULT_NETWORK and network not in networks:
            errors.append(_missing("networks", network, child_path(path, "networks")))
    volumes = doc.get("volumes", {})
    for n, mount in enumerate(service.get("volumes", [])):
        source = mount.get("source")
        if mount["type"] == "volume" and source and source not in volumes:
            errors.append(_missing("volumes", source, child_path(child_path(path, "volumes"), n)))
    for kind in ("secrets", "configs"):
        defined = doc.get(kind, {})
        for n, ref in enumerate(service.get(kind, [])):
            if ref["source"] not in defined:
                errors.append(_missing(kind, ref["source"], child_path(child_path(path, kind), n)))
    for dependency in service.get("depends_on", {}):
        if dependency not in doc["services"]:
            where = child_path(path, "depends_on")
            errors.append(ComposeError(f'depends on undefined service "{dependency}"', field=where))
    return errors


def _cycle(services: dict[str, Any]) -> list[str] | None:
    """One dependency cycle as a path of names (first == last), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(name: str, trail: list[str]) -> list[str] | None:
        state[name] = 1
        for dep in services[name].get("depends_on", {}):
            if dep not in services:
                continue
            if state.get(dep) == 1:
                return [*trail[trail.index(dep) :], dep] if dep in trail else [name, dep]
            if dep not in state:
                found = visit(dep, [*trail, dep])
                if found:
                    return found
        state[name] = 2
        return None

    for name in sorted(services):
        if name not in state:
            found = visit(name, [name])
            if found:
                return found
    return None


def _published_twice(services: dict[str, Any]) -> list[ComposeError]:
    seen: dict[tuple[int, str], str] = {}
    errors = []
    for name in sorted(services):
        for port in services[name].get("ports", []):
            if "published" not in port or port.get("mode") == "host":
                continue
            key = (port["published"], port.get("protocol", "tcp"))
            if key in seen:
                errors.append(ComposeError(
                    f"port {key[0]}/{key[1]} is already published by service {seen[key]}",
                    field=f"services.{name}.ports",
                ))  # fmt: skip
            else:
                seen[key] = name
    return errors


def _file_objects(doc: dict[str, Any]) -> list[ComposeError]:
    errors = []
    for kind in ("secrets", "configs"):
        for name, item in doc.get(kind, {}).items():
            path = f"{kind}.{name}"
            sources = [k for k in ("file", "environment", "content") if k in item]
            if item.get("external"):
                continue
            if len(sources) != 1:
                errors.append(ComposeError("needs exactly one of file, environment, content "
                                           "(or external)", field=path))  # fmt: skip
                continue
            if "file" in item:
                file = Path(item["file"])
                if not file.is_file():
                    errors.append(ComposeError(f"no such file {item['file']}", field=path))
                elif file.stat().st_size > FILE_LIMITS[kind]:
                    limit = FILE_LIMITS[kind] // 1024
                    errors.append(ComposeError(f"file is larger than {limit} KiB", field=path))
    return errors


def check_references(doc: dict[str, Any]) -> list[ComposeError]:
    services: dict[str, Any] = doc["services"]
    errors: list[ComposeError] = []
    for name in sorted(services):
        errors.extend(_service_references(name, services[name], doc))
    cycle = _cycle(services)
    if cycle:
        errors.append(ComposeError("dependency cycle: " + " -> ".join(cycle), field="services"))
    errors.extend(_published_twice(services))
    errors.extend(_file_objects(doc))
    return errors
