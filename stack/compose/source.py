"""Reading one compose file: YAML (anchors and merge keys included) into plain Python
values, with syntax errors named by file, line and column, and the `.env` file that
sits beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pyswarm.stack.errors import ComposeError

# A compose file is read whole into memory; this bounds what a stray path can cost.
MAX_FILE_BYTES = 4 * 1024 * 1024


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML forbids it;
    PyYAML would silently keep the last, hiding the user's mistake)."""


def _no_duplicate_keys(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, list | dict):
            continue
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"mapping key {key!r} already defined", mark
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def parse_yaml(text: str, name: str) -> dict[str, Any]:
    """The document in `text` as a mapping; `name` is what errors call the file."""
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        problem = err.problem or err.context or "invalid YAML"
        raise ComposeError(f"yaml: {problem}", field=where) from None
    except yaml.YAMLError as err:
        raise ComposeError(f"yaml: {err}", field=name) from None
    if data is None:
        raise ComposeError("empty compose file", field=name)
    if not isinstance(data, dict):
        raise ComposeError("top-level object must be a mapping", field=name)
    for key in data:
        if not isinstance(key, str):
            raise ComposeError(f"non-string key at top level: {key!r}", field=name)
    return data


def read_compose_file(path: Path) -> dict[str, Any]:
    """One compose file from disk; `-` is not handled here (the caller reads stdin)."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise ComposeError(f"cannot read compose file: {err.strerror}", field=str(path)) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ComposeError("compose file larger than 4 MiB", field=str(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ComposeError(f"not UTF-8 at byte {err.start}", field=str(path)) from None
    return parse_yaml(text, str(path))


def parse_dotenv(text: str, name: str) -> dict[str, str]:
    """A `.env` file as compose reads it: KEY=VALUE lines, `export` allowed, `#`
    comments, single quotes literal, double quotes with \\n escapes."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not key or not key.replace("_", "a").replace(".", "a").replace("-", "a").isalnum():
            raise ComposeError(f"invalid variable name {key!r}", field=f"{name}:{number}")
        if not sep:
            continue  # a bare name: taken from the environment, which already has priority
        values[key] = _dotenv_value(value.strip())
    return values


def _dotenv_value(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        return inner.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
    comment = value.find(" #")
    return value[:comment].rstrip() if comment >= 0 else value


def read_dotenv(folder: Path) -> dict[str, str]:
    """The `.env` beside the (first) compose file, or nothing when there is none."""
    path = folder / ".env"
    if not path.is_file():
        return {}
    return parse_dotenv(path.read_text(encoding="utf-8"), str(path))
