"""Variable interpolation in compose values, with compose's syntax:

`$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset),
`${VAR:?error}` / `${VAR?error}` (fail with the message), `${VAR:+alt}` / `${VAR+alt}`
(alt when set), `$$` for a literal `$`. Defaults and alternatives may themselves hold
variables (`${A:-${B}}`). Only values are interpolated, never keys, as compose does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pyswarm.stack.errors import ComposeError, child_path

Lookup = Callable[[str], str | None]


def _is_name_start(ch: str) -> bool:
    return ch == "_" or ("a" <= ch.lower() <= "z")


def _is_name_char(ch: str) -> bool:
    return _is_name_start(ch) or ch.isdigit()


class _Parser:
    def __init__(self, text: str, lookup: Lookup, path: str) -> None:
        self.text = text
        self.lookup = lookup
        self.path = path

    def fail(self, message: str) -> ComposeError:
        return ComposeError(message, field=self.path)

    def expand(self, start: int, stop_at_brace: bool) -> tuple[str, int]:
        """Expand from `start` to the end (or to the `}` closing an enclosing braced
        expression when `stop_at_brace`): (result, index after what was read)."""
        out: list[str] = []
        i = start
        text = self.text
        while i < len(text):
            ch = text[i]
            if stop_at_brace and ch == "}":
                return "".join(out), i
            if ch != "$":
                out.append(ch)
                i += 1
                continue
            nxt = text[i + 1] if i + 1 < len(text) else ""
            if nxt == "$":
                out.append("$")
                i += 2
            elif nxt == "{":
                value, i = self.braced(i + 2)
                out.append(value)
            elif nxt and _is_name_start(nxt):
                j = i + 1
                while j < len(text) and _is_name_char(text[j]):
                    j += 1
                out.append(self.lookup(text[i + 1 : j]) or "")
                i = j
            else:
                raise self.fail(f'invalid interpolation format for "{text}": a lone "$"')
        if stop_at_brace:
            raise self.fail(f'invalid interpolation format for "{text}": missing "}}"')
        return "".join(out), i

    def braced(self, start: int) -> tuple[str, int]:
        """`${...}` from just after `${`: (value, index after the closing brace)."""
        text = self.text
        j = start
        while j < len(text) and _is_name_char(text[j]):
            j += 1
        name = text[start:j]
        if not name or not _is_name_start(name[0]):
            raise self.fail(f'invalid interpolation format for "{text}": a bad variable name')
        if j < len(text) and text[j] == "}":
            return self.lookup(name) or "", j + 1
        operator = ""
        for candidate in (":-", ":?", ":+", "-", "?", "+"):
            if text.startswith(candidate, j):
                operator = candidate
                break
        if not operator:
            raise self.fail(f'invalid interpolation format for "{text}"')
        argument, end = self.expand(j + len(operator), stop_at_brace=True)
        value = self.lookup(name)
        unset_or_empty = not value
        missing = unset_or_empty if operator.startswith(":") else value is None
        kind = operator[-1]
        if kind == "-":
            result = argument if missing else (value or "")
        elif kind == "+":
            result = "" if missing else argument
        else:  # "?"
            if missing:
                reason = argument or f"variable {name} is not set"
                raise self.fail(f"required variable {name} is missing a value: {reason}")
            result = value or ""
        return result, end + 1


def interpolate_text(text: str, lookup: Lookup, path: str) -> str:
    if "$" not in text:
        return text
    value, _ = _Parser(text, lookup, path).expand(0, stop_at_brace=False)
    return value


def interpolate(value: Any, lookup: Lookup, path: str = "") -> Any:
    """`value` (a parsed compose document or part of it) with every string interpolated;
    errors name the dotted path of the value at fault."""
    if isinstance(value, str):
        return interpolate_text(value, lookup, path)
    if isinstance(value, Mapping):
        return {
            key: interpolate(item, lookup, child_path(path, str(key)))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [interpolate(item, lookup, child_path(path, n)) for n, item in enumerate(value)]
    return value


def environment_lookup(*layers: Mapping[str, str]) -> Lookup:
    """Earlier layers win: the process environment, then the `.env` file."""

    def lookup(name: str) -> str | None:
        for layer in layers:
            if name in layer:
                return layer[name]
        return None

    return lookup
