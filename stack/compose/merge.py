"""Merging normalised compose documents given with several `-c` files, later files
overriding earlier ones as compose merges them: mappings merge key by key, scalars and
argv lists are replaced, list-valued settings are joined without repeats, and mounts,
ports and file references are matched by what identifies them (a mount's target, a
port's binding, a secret's target)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

# Lists joined (order kept, repeats dropped) rather than replaced.
_UNION = {
    "dns", "dns_search", "dns_opt", "cap_add", "cap_drop", "extra_hosts", "tmpfs",
    "group_add", "constraints", "preferences", "aliases",
}  # fmt: skip


def _port_key(port: dict[str, Any]) -> tuple[Any, ...]:
    return (port.get("host_ip", ""), port.get("published"), port["target"],
            port.get("protocol", "tcp"), port.get("mode", "ingress"))  # fmt: skip


def _reference_key(ref: dict[str, Any]) -> str:
    return str(ref.get("target") or ref["source"])


def _file_key(item: dict[str, Any]) -> str:
    return str(item["path"])


_KEYED: dict[str, Callable[[dict[str, Any]], Hashable]] = {
    "ports": _port_key,
    "volumes": lambda mount: mount["target"],
    "secrets": _reference_key,
    "configs": _reference_key,
    "env_file": _file_key,
}


def _union(base: list[Any], override: list[Any]) -> list[Any]:
    out = list(base)
    for item in override:
        if item not in out:
            out.append(item)
    return out


def _keyed(
    base: list[dict[str, Any]], override: list[dict[str, Any]],
    key: Callable[[dict[str, Any]], Hashable],
) -> list[dict[str, Any]]:  # fmt: skip
    merged = {key(item): item for item in base}
    for item in override:
        merged[key(item)] = item
    return list(merged.values())


def merge_values(key: str, base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = merge_values(k, base[k], v) if k in base else v
        return out
    if isinstance(base, list) and isinstance(override, list):
        if key in _KEYED:
            return _keyed(base, override, _KEYED[key])
        if key in _UNION:
            return _union(base, override)
    return override


def merge_documents(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """The documents in order, each overriding the ones before it."""
    merged: dict[str, Any] = {}
    for document in documents:
        merged = merge_values("", merged, document)
    return merged
