"""Image references as docker parses them: [HOST[:PORT]/]PATH[:TAG][@DIGEST].

Repository path components are lowercase; a first component is a registry host
when it holds a "." or ":" or is "localhost". The default tag is "latest".
Names are kept in docker's familiar form: "docker.io/library/busybox" becomes
"busybox", so tags read as `docker images` shows them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyswarm.images.errors import InvalidReference

DEFAULT_TAG = "latest"
_MAX_NAME = 255

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_HOST = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_HEX = re.compile(r"[a-f0-9]+")


@dataclass(frozen=True)
class Reference:
    """A parsed reference. `tag` is "" only when a digest was given without a tag."""

    name: str
    tag: str = DEFAULT_TAG
    digest: str = ""
    explicit_tag: bool = False

    @property
    def tagged(self) -> str:
        """NAME:TAG, the form stored in Image.repo_tags."""
        return f"{self.name}:{self.tag}"

    def __str__(self) -> str:
        text = self.name
        if self.tag and (self.explicit_tag or not self.digest):
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def familiar_name(name: str) -> str:
    """Drop docker.io's default registry and library/ prefixes, as docker displays names."""
    for prefix in ("docker.io/library/", "index.docker.io/library/"):
        if name.startswith(prefix) and "/" not in name[len(prefix) :]:
            return name[len(prefix) :]
    for prefix in ("docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def parse_reference(text: str) -> Reference:
    """Parse NAME[:TAG][@DIGEST]; raise InvalidReference naming `text` when malformed."""
    if not text:
        raise InvalidReference(text, "empty reference")
    remainder, digest = text, ""
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise InvalidReference(text, "digest must be sha256: and 64 lowercase hex digits")
    name, tag, explicit = remainder, DEFAULT_TAG if not digest else "", False
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > slash:
        name, tag, explicit = remainder[:colon], remainder[colon + 1 :], True
        if not _TAG.fullmatch(tag):
            raise InvalidReference(text, "tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
    _check_name(text, name)
    return Reference(familiar_name(name), tag, digest, explicit)


def parse_tagged(text: str) -> Reference:
    """Parse a reference that names a tag (for `tag` targets and archive tags): no digest."""
    ref = parse_reference(text)
    if ref.digest:
        raise InvalidReference(text, "a tag cannot carry a digest")
    return ref


def is_id_prefix(text: str) -> bool:
    """True when `text` may abbreviate an image id: >= 4 hex digits, "sha256:" optional."""
    hex_part = text.removeprefix("sha256:")
    return 4 <= len(hex_part) <= 64 and bool(_HEX.fullmatch(hex_part))


def _check_name(text: str, name: str) -> None:
    if not name:
        raise InvalidReference(text, "repository name is empty")
    if len(name) > _MAX_NAME:
        raise InvalidReference(text, f"repository name longer than {_MAX_NAME} characters")
    parts = name.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost"):
        if not _HOST.fullmatch(first):
            raise InvalidReference(text, f"invalid registry host {first!r}")
        parts = parts[1:]
    for part in parts:
        if _COMPONENT.fullmatch(part):
            continue
        if _COMPONENT.fullmatch(part.lower()):
            raise InvalidReference(text, "repository name must be lowercase")
        raise InvalidReference(text, f"invalid repository path component {part!r}")
