"""The build cache: which image each step produced, and each step image's parent.

One JSON file beside the image store's index, written atomically (temp file, fsync,
rename), so it survives agent restarts. An entry maps a step's key (see `step_key`)
to the image it made; entries whose image has since been removed are ignored (and
dropped on the next write). The parent links also let the image commands tell a
build's intermediate images apart: see the package docstring.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

_VERSION = 1


def step_key(parent_id: str, step: str, sources: str = "") -> str:
    """The cache key of a step: its parent image, its text after substitution (RUN's
    includes the build args it sees) and, for COPY/ADD, the digest of its sources."""
    text = json.dumps([parent_id, step, sources])
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class BuildCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._steps: dict[str, str] = {}  # key -> image id
        self._parents: dict[str, str] = {}  # step image id -> parent image id
        self._uses: dict[str, list[str]] = {}  # COPY --from step image -> images it read
        try:
            document = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return  # no cache yet, or an unreadable one: start empty
        if isinstance(document, dict) and document.get("version") == _VERSION:
            self._steps = {str(k): str(v) for k, v in document.get("steps", {}).items()}
            self._parents = {str(k): str(v) for k, v in document.get("parents", {}).items()}
            self._uses = {str(k): list(v) for k, v in document.get("uses", {}).items()}

    def lookup(self, key: str, exists: Callable[[str], bool]) -> str | None:
        with self._lock:
            image_id = self._steps.get(key)
        return image_id if image_id is not None and exists(image_id) else None

    def record(
        self,
        key: str,
        image_id: str,
        parent_id: str,
        existing: Iterable[str],
        uses: Iterable[str] = (),
    ) -> None:
        """Remember a step (`uses`: images a COPY --from read); entries of images no
        longer in `existing` are dropped."""
        alive = set(existing)
        with self._lock:
            self._steps[key] = image_id
            if parent_id:
                self._parents[image_id] = parent_id
            if uses:
                self._uses[image_id] = sorted(set(uses))
            self._steps = {k: v for k, v in self._steps.items() if v in alive}
            self._parents = {k: v for k, v in self._parents.items() if k in alive}
            self._uses = {k: v for k, v in self._uses.items() if k in alive}
            self._write()

    def parents(self) -> dict[str, str]:
        """Each step image's parent: the image the step was built on."""
        with self._lock:
            return dict(self._parents)

    def links(self) -> dict[str, list[str]]:
        """Each step image's dependencies: its parent and the images it copied from."""
        with self._lock:
            links = {child: [parent] for child, parent in self._parents.items()}
            for child, used in self._uses.items():
                links.setdefault(child, []).extend(used)
            return links

    def _write(self) -> None:
        document = {
            "version": _VERSION,
            "steps": self._steps,
            "parents": self._parents,
            "uses": self._uses,
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(document, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def intermediate(images: dict[str, bool], links: dict[str, list[str]]) -> set[str]:
    """Untagged images another existing image depends on (`images`: id -> tagged)."""
    needed = {dep for child, deps in links.items() if child in images for dep in deps}
    return {image_id for image_id in needed if image_id in images and not images[image_id]}


def ancestors(keep: Iterable[str], links: dict[str, list[str]]) -> set[str]:
    """Every image the images in `keep` depend on, through any number of steps."""
    found: set[str] = set()
    pending = list(keep)
    while pending:
        for dep in links.get(pending.pop(), []):
            if dep not in found:
                found.add(dep)
                pending.append(dep)
    return found
