"""Checking one interpolated compose document against pyswarm's schema: values that
interpolation left as text are cast where the schema wants a number or a boolean,
every problem is named by its dotted path, and the keys a stack ignores are collected
for the warning line."""

from __future__ import annotations

import json
import re
from typing import Any, cast

import jsonschema

from pyswarm.stack.compose.schema import COMPOSE, Schema
from pyswarm.stack.errors import ComposeError, ComposeErrors, child_path

_VALIDATOR = jsonschema.Draft7Validator(COMPOSE)
_TRUE = {"true", "yes", "on", "y"}
_FALSE = {"false", "no", "off", "n"}
_ARTICLE = {
    "string": "a string", "integer": "an integer", "number": "a number",
    "boolean": "a boolean", "object": "a mapping", "array": "a list", "null": "empty",
}  # fmt: skip


def _types(schema: Schema) -> list[str]:
    kind = schema.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def _child_schema(schema: Schema, key: str) -> Schema | None:
    if key in schema.get("properties", {}):
        sub: Schema = schema["properties"][key]
        return sub
    patterns: dict[str, Schema] = schema.get("patternProperties", {})
    for pattern, matched in patterns.items():
        if re.search(pattern, key):
            return matched
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def _cast(value: str, types: list[str]) -> Any:
    text = value.strip()
    if "integer" in types and re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if "number" in types and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", text):
        return float(text)
    if "boolean" in types and text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    return value


def coerce(value: Any, schema: Schema | None) -> Any:
    """`value` with strings cast where the schema has no room for a string (what
    `${REPLICAS}` leaves behind must still be a number)."""
    if schema is None:
        return value
    types = _types(schema)
    if isinstance(value, str):
        return value if "string" in types or not types else _cast(value, types)
    if isinstance(value, dict):
        return {k: coerce(v, _child_schema(schema, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        items = schema.get("items")
        return [coerce(v, items if isinstance(items, dict) else None) for v in value]
    return value


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return json.dumps(value, ensure_ascii=False, default=str)


def _path(prefix: str, parts: Any) -> str:
    path = prefix
    for part in parts:
        path = child_path(path, part if isinstance(part, int) else str(part))
    return path


def _messages(error: jsonschema.ValidationError, prefix: str) -> list[ComposeError]:
    path = _path(prefix, error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    kind = error.validator
    instance: Any = error.instance
    if kind == "additionalProperties":
        known = set(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        extra = [
            key for key in instance
            if key not in known and not any(re.search(p, str(key)) for p in patterns)
        ]  # fmt: skip
        return [ComposeError("unknown key", field=child_path(path, str(k))) for k in extra]
    if kind == "type":
        wanted = " or ".join(_ARTICLE.get(t, t) for t in _types(schema))
        return [ComposeError(f"must be {wanted}, got {_shown(error.instance)}", field=path)]
    if kind == "enum":
        choices = ", ".join(str(c) for c in cast(list[Any], error.validator_value))
        return [ComposeError(f"must be one of {choices}, got {_shown(error.instance)}", field=path)]
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [ComposeError(f'missing required key "{missing}"', field=path)]
    if kind == "pattern":
        expect = schema.get("x-expect", f"text matching {error.validator_value}")
        return [ComposeError(f"must be {expect}, got {_shown(error.instance)}", field=path)]
    if kind == "propertyNames":
        return [ComposeError(f"invalid name {_shown(error.instance)}", field=path)]
    if kind in ("minimum", "maximum"):
        word = "at least" if kind == "minimum" else "at most"
        return [
            ComposeError(
                f"must be {word} {error.validator_value}, got {error.instance}", field=path
            )
        ]
    if kind == "minProperties":
        return [ComposeError("must not be empty", field=path)]
    return [ComposeError(error.message, field=path)]


def validate(document: dict[str, Any], source: str) -> dict[str, Any]:
    """The document, cast and checked; every problem at once in ComposeErrors."""
    cast = coerce(document, COMPOSE)
    errors: list[ComposeError] = []
    for error in sorted(_VALIDATOR.iter_errors(cast), key=lambda e: list(map(str, e.path))):
        errors.extend(_messages(error, ""))
    if errors:
        for error in errors:
            error.message = f"{source}: {error.message}" if source else error.message
        raise ComposeErrors(errors)
    return cast  # type: ignore[no-any-return]


def ignored_keys(value: Any, schema: Schema | None = COMPOSE, path: str = "") -> list[str]:
    """Dotted paths of every key present that the stack ignores (schema's x-ignored)."""
    found: list[str] = []
    if schema is None:
        return found
    if isinstance(value, dict):
        ignored = set(schema.get("x-ignored", ()))
        for key, item in value.items():
            sub_path = child_path(path, str(key))
            if key in ignored:
                found.append(sub_path)
                continue
            found.extend(ignored_keys(item, _child_schema(schema, str(key)), sub_path))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for n, item in enumerate(value):
            found.extend(ignored_keys(item, schema["items"], child_path(path, n)))
    return found
