"""The store's blob-to-layer index: images whose layers another stored blob carries.

An image is committed naming a layer blob the store lacks (as a pull does when the
diff id is already unpacked); the store records its own blob of that layer, keeps
it alive, and writes it out in `image save` under a manifest that names it.
"""

from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path

import pytest

from pyswarm.images import ImageError, ImageStore, oci
from pyswarm.images.staging import StagedImage, StagedLayer
from pyswarm.images.testing import (
    ArchiveImage,
    diff_id,
    digest,
    directory,
    file,
    layer_tar,
    oci_archive,
)

PLAIN = layer_tar([directory("etc"), file("etc/motd", b"hello\n")])
GZ = gzip.compress(PLAIN, mtime=0)


def _commit_gzip_variant(store: ImageStore) -> str:
    """Commit an image whose manifest names GZ, a blob the store never receives."""
    image = ArchiveImage([GZ], tags=["gz:1"], cmd=["true"])
    config = image.config()
    layer = oci.Descriptor(oci.LAYER_MEDIA_TYPES["gzip"], digest(GZ), len(GZ), {})
    manifest = oci.build_manifest(digest(config), len(config), [layer])
    with store.stage() as staging:
        config_digest = staging.add_bytes(config, "config")
        manifest_digest = staging.add_bytes(manifest, "manifest")
        parsed = oci.parse_config(config, config_digest)
        parsed.repo_tags.append("gz:1")
        staged_layer = StagedLayer(digest(GZ), layer.media_type, diff_id(GZ))
        store.commit(staging, [StagedImage(parsed, manifest_digest, [staged_layer])])
    return image.id


def _load_plain(store: ImageStore, tmp_path: Path) -> str:
    oci_archive(tmp_path / "plain.tar", [ArchiveImage([PLAIN], tags=["plain:1"])])
    [image] = store.load(tmp_path / "plain.tar")
    return image.id


def test_commit_records_the_stored_blob_of_a_layer(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    _load_plain(store, tmp_path)
    assert store.has_layer(diff_id(PLAIN)) and not store.has_layer_blob(digest(GZ), diff_id(GZ))
    gz_id = _commit_gzip_variant(store)
    assert store.layer_blobs(gz_id) == [digest(GZ)]
    assert store.local_layer_blobs(gz_id) == [digest(PLAIN)]
    with pytest.raises(ImageError, match="missing"):
        store.blob_path(digest(GZ))
    reopened = ImageStore(store.root)  # the record survives the index round trip
    assert reopened.local_layer_blobs(gz_id) == [digest(PLAIN)]


def test_the_carrier_blob_lives_as_long_as_an_image_uses_it(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    _load_plain(store, tmp_path)
    gz_id = _commit_gzip_variant(store)
    store.remove("plain:1", force=False, in_use=set())
    assert store.blob_path(digest(PLAIN)).read_bytes() == PLAIN
    assert store.layer_dirs(store.resolve(gz_id))[0].joinpath("etc/motd").read_bytes() == (
        b"hello\n"
    )
    store.remove("gz:1", force=False, in_use=set())
    assert list(store.blob_dir.iterdir()) == [] and list(store.layer_root.iterdir()) == []


def test_commit_without_blob_or_layer_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    with pytest.raises(ImageError, match=f"blob {digest(GZ)} was removed"):
        _commit_gzip_variant(store)
    assert store.list() == [] and list(store.blob_dir.iterdir()) == []
    assert list(store.tmp_dir.iterdir()) == []


def test_save_writes_the_stored_blob_under_a_manifest_naming_it(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    _load_plain(store, tmp_path)
    gz_id = _commit_gzip_variant(store)
    store.save(["gz:1"], tmp_path / "out.tar")
    with tarfile.open(tmp_path / "out.tar") as tar:
        names = set(tar.getnames())
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        manifest_name = "blobs/sha256/" + index["manifests"][0]["digest"][7:]
        manifest = json.loads(tar.extractfile(manifest_name).read())  # type: ignore[union-attr]
    assert "blobs/sha256/" + digest(PLAIN)[7:] in names
    assert "blobs/sha256/" + digest(GZ)[7:] not in names
    assert manifest["layers"] == [
        {"digest": digest(PLAIN), "mediaType": oci.LAYER_MEDIA_TYPES[""], "size": len(PLAIN)}
    ]
    assert manifest["config"]["digest"] == gz_id
    elsewhere = ImageStore(tmp_path / "elsewhere")
    [loaded] = elsewhere.load(tmp_path / "out.tar")
    assert loaded.id == gz_id and list(loaded.repo_tags) == ["gz:1"]


def test_index_written_before_local_blobs_existed_still_reads(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    plain_id = _load_plain(store, tmp_path)
    index_path = store.root / "metadata.json"
    document = json.loads(index_path.read_text())
    for entry in document["images"].values():
        del entry["local_blobs"]
    index_path.write_text(json.dumps(document))
    reopened = ImageStore(store.root)
    assert reopened.local_layer_blobs(plain_id) == [digest(PLAIN)]
    assert reopened.has_layer(diff_id(PLAIN))
