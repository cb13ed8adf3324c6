"""Finding images in the store's index by what users type: tags, digests, ids, id prefixes.

Callers hold the store's lock. Records are the index's own objects: hand out
copies (`copy_image`) to anyone outside the store.
"""

from __future__ import annotations

from pyswarm.images.errors import ImageNotFound, InvalidReference
from pyswarm.images.metadata import ImageRecord, Metadata
from pyswarm.images.reference import is_id_prefix, parse_reference
from pyswarm.proto import types_pb2

_FULL_ID = len("sha256:") + 64


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def copy_image(image: types_pb2.Image) -> types_pb2.Image:
    result = types_pb2.Image()
    result.CopyFrom(image)
    return result


def find(meta: Metadata, ref: str) -> tuple[ImageRecord, str]:
    """The record `ref` names and, when `ref` named a tag, that NAME:TAG.

    `ref` is NAME[:TAG], NAME@DIGEST (the image id or manifest digest, in a
    repository the image came from), a full id or a unique id prefix.
    """
    if ref.startswith("sha256:") and len(ref) == _FULL_ID:
        record = meta.images.get(ref)
        if record is None:
            raise ImageNotFound(ref)
        return record, ""
    try:
        parsed = parse_reference(ref)
    except InvalidReference:
        if not is_id_prefix(ref):
            raise
    else:
        if parsed.digest:
            for record in meta.images.values():
                if parsed.digest in (record.image.id, record.image.manifest_digest) and (
                    parsed.name in repositories(record.image)
                ):
                    return record, ""
        else:
            record_or_none = meta.image_with_tag(parsed.tagged)
            if record_or_none is not None:
                return record_or_none, parsed.tagged
    if is_id_prefix(ref):
        prefix = "sha256:" + ref.removeprefix("sha256:")
        matches = [r for i, r in meta.images.items() if i.startswith(prefix)]
        if len(matches) == 1:
            return matches[0], ""
        if len(matches) > 1:
            raise InvalidReference(ref, f"id prefix matches {len(matches)} images")
    raise ImageNotFound(ref)


def find_tagged(meta: Metadata, ref: str) -> list[tuple[ImageRecord, list[str]]]:
    """The images `ref` names with the tags it names them by, as `docker save` reads it.

    NAME:TAG is that tag, a bare NAME every tag of that repository, an id (or
    NAME@DIGEST) the image without tags.
    """
    try:
        parsed = parse_reference(ref)
    except InvalidReference:
        parsed = None
    if parsed is not None and not parsed.explicit_tag and not parsed.digest:
        prefix = parsed.name + ":"
        found = [
            (record, [t for t in record.image.repo_tags if t.startswith(prefix)])
            for record in meta.images.values()
        ]
        found = [(record, tags) for record, tags in found if tags]
        if found:
            return found
    record, tag = find(meta, ref)
    return [(record, [tag] if tag else [])]


def repositories(image: types_pb2.Image) -> list[str]:
    """The repository names an image is known by, through tags and repo digests."""
    names = [tag.rsplit(":", 1)[0] for tag in image.repo_tags]
    names += [digest.split("@", 1)[0] for digest in image.repo_digests]
    return names
