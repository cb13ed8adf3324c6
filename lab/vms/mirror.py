"""The Debian mirror debootstrap fetches from: the one this host's apt uses, so the
VM image comes from the same place as the host's own packages."""

from __future__ import annotations

import os
from pathlib import Path

from pyswarm.lab.errors import LabError

MIRROR_ENV = "PYSWARM_LAB_MIRROR"
APT = Path("/etc/apt")


def _deb822_uris(text: str) -> list[str]:
    """URIs of the 'deb' stanzas of a .sources file whose suites are not -security."""
    found = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        suites = fields.get("suites", "").split()
        if (
            "deb" in fields.get("types", "").split()
            and fields.get("enabled", "yes").lower() != "no"
            and "main" in fields.get("components", "").split()
            and any(not s.endswith("-security") for s in suites)
        ):
            found += fields.get("uris", "").split()
    return found


def _one_line_uris(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words[:1] != ["deb"]:
            continue
        words = [w for w in words[1:] if not w.startswith("[")]  # drop [options]
        if len(words) >= 3 and not words[1].endswith("-security") and "main" in words[2:]:
            found.append(words[0])
    return found


def debian_mirror(apt: Path = APT) -> str:
    if os.environ.get(MIRROR_ENV):
        return os.environ[MIRROR_ENV]
    uris: list[str] = []
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        uris += _deb822_uris(path.read_text(errors="replace"))
    for path in [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]:
        if path.is_file():
            uris += _one_line_uris(path.read_text(errors="replace"))
    for uri in uris:
        if uri.rstrip("/").endswith("/debian"):
            return uri
    raise LabError(f"no Debian mirror in this host's apt sources ({apt}): set ${MIRROR_ENV} to one")
