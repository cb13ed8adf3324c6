"""`.dockerignore`: which context paths the CLI leaves out of a build (docker's rules).

One pattern per line; blank lines and lines starting with `#` are skipped; a
leading `!` makes an exception (re-includes what earlier patterns excluded); the
last pattern that matches decides. Patterns are cleaned and taken relative to the
context root (a leading `/` means the root too). `*` matches within one path
component, `?` one character, `[...]` a class, `**` any number of components, and a
pattern that matches a directory matches everything beneath it.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    text: str
    exception: bool
    regex: re.Pattern[str]


def read_patterns(text: str) -> list[Pattern]:
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        if exception:
            line = line[1:].strip()
        cleaned = posixpath.normpath(line).lstrip("/")
        if cleaned in ("", "."):
            continue
        patterns.append(Pattern(cleaned, exception, re.compile(_translate(cleaned))))
    return patterns


def _translate(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out.append("(?:.*/)?")  # `**/` also matches no directory at all
                i += 1
            else:
                out.append(".*")
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            close = pattern.find("]", i + 1)
            if close < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : close].replace("\\", "\\\\")
                if body.startswith("^") or body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = close
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return "^" + "".join(out) + "$"


class Matcher:
    """Decides for context-relative paths (`a/b/c`, no leading `/`)."""

    def __init__(self, patterns: list[Pattern]) -> None:
        self.patterns = patterns
        self.has_exceptions = any(p.exception for p in patterns)

    def excluded(self, path: str) -> bool:
        candidates = [path]
        parent = posixpath.dirname(path)
        while parent:
            candidates.append(parent)
            parent = posixpath.dirname(parent)
        result = False
        for pattern in self.patterns:
            if any(pattern.regex.match(candidate) for candidate in candidates):
                result = not pattern.exception
        return result
