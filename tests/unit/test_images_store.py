"""ImageStore against real archives built with tarfile: load, save, tags, removal, df."""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import tarfile
import threading
from pathlib import Path

import pytest

from pyswarm.common.errors import FailedPrecondition, NotFound
from pyswarm.images import (
    ImageConflict,
    ImageNotFound,
    ImageStore,
    InvalidArchive,
    InvalidReference,
)
from pyswarm.images.busybox import INDEX_HTML, write_busybox_rootfs
from pyswarm.images.oci import DEFAULT_PATH
from pyswarm.images.testing import (
    ArchiveImage,
    directory,
    docker_archive,
    file,
    layer_tar,
    oci_archive,
)

BASE = layer_tar([directory("etc"), file("etc/os-release", b"base\n"), file("shared", b"s" * 100)])
MIDDLE = layer_tar([directory("app"), file("app/run.sh", b"#!/bin/sh\n", mode=0o755)])
TOP = layer_tar([file("app/config", b"top\n")], compress=True)
OTHER = layer_tar([file("other", b"o" * 10)])


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "store")


def three_layer_image(tags: list[str] | None = None) -> ArchiveImage:
    return ArchiveImage([BASE, MIDDLE, TOP], tags=tags if tags is not None else ["app:1"])


def load(store: ImageStore, tmp_path: Path, *images: ArchiveImage, oci: bool = False) -> list[str]:
    archive = tmp_path / f"archive-{len(os.listdir(tmp_path))}.tar"
    (oci_archive if oci else docker_archive)(archive, list(images))
    return [image.id for image in store.load(archive)]


def rewrite(archive: Path, change: dict[str, bytes | None]) -> None:
    """Replace (or with None drop) members of a tar archive."""
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m) if m.isreg() else None) for m in tar.getmembers()]
        contents = [(m, f.read() if f is not None else b"") for m, f in members]
    with tarfile.open(archive, "w") as tar:
        for member, data in contents:
            if member.name in change:
                replacement = change[member.name]
                if replacement is None:
                    continue
                data = replacement
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if member.isreg() else None)


def test_busybox_rootfs_imports_as_a_one_layer_image(store: ImageStore, tmp_path: Path) -> None:
    tar = tmp_path / "busybox.tar"
    write_busybox_rootfs(tar)
    image = store.import_rootfs(tar, "busybox")
    assert list(image.repo_tags) == ["busybox:latest"]
    assert list(image.config.cmd) == ["sh"] and list(image.config.env) == [DEFAULT_PATH]
    assert len(image.layers) == 1 and image.size > 0
    [layer] = store.layer_dirs(image)
    assert os.access(layer / "bin/busybox", os.X_OK)
    assert os.path.realpath(layer / "bin/sh") == str(layer / "bin/busybox")
    assert (layer / "var/www/index.html").read_bytes() == INDEX_HTML
    assert "nobody:x:65534:65534" in (layer / "etc/passwd").read_text()
    assert stat.S_IMODE(os.stat(layer / "tmp").st_mode) == 0o1777
    again = store.import_rootfs(tar, "busybox:again")
    assert again.id == image.id
    assert sorted(again.repo_tags) == ["busybox:again", "busybox:latest"]


def test_gzip_rootfs_shares_the_layer_of_the_plain_one(store: ImageStore, tmp_path: Path) -> None:
    plain, packed = tmp_path / "plain.tar", tmp_path / "packed.tar.gz"
    plain.write_bytes(BASE)
    packed.write_bytes(gzip.compress(BASE))
    first = store.import_rootfs(plain, "a")
    second = store.import_rootfs(packed, "b")
    assert first.layers == second.layers
    assert len(list(store.layer_root.iterdir())) == 1


@pytest.mark.parametrize("legacy", [False, True])
def test_docker_archive_with_three_layers(store: ImageStore, tmp_path: Path, legacy: bool) -> None:
    expected = three_layer_image(["app:1", "registry.local:5000/team/app:v2"])
    archive = tmp_path / "save.tar"
    docker_archive(archive, [expected], legacy=legacy)
    [image] = store.load(archive)
    assert image.id == expected.id
    assert list(image.repo_tags) == ["app:1", "registry.local:5000/team/app:v2"]
    assert image.platform.os == "linux" and list(image.config.cmd) == ["sh"]
    dirs = store.layer_dirs(image)
    assert len(dirs) == 3
    assert (dirs[0] / "app/config").read_bytes() == b"top\n"  # top-most first
    assert (dirs[1] / "app/run.sh").exists() and (dirs[2] / "etc/os-release").exists()
    assert image.size == len(b"base\n") + 100 + len(b"#!/bin/sh\n") + len(b"top\n")


@pytest.mark.parametrize("gzip_outer", [False, True])
def test_oci_archive_with_gzip_layers(store: ImageStore, tmp_path: Path, gzip_outer: bool) -> None:
    expected = three_layer_image(["docker.io/library/app:oci"])
    archive = tmp_path / "oci.tar"
    oci_archive(archive, [expected], gzip_outer=gzip_outer)
    [image] = store.load(archive)
    assert image.id == expected.id
    assert list(image.repo_tags) == ["app:oci"]
    assert store.resolve(f"app@{image.manifest_digest}").id == image.id


def test_images_sharing_a_base_layer_store_it_once(store: ImageStore, tmp_path: Path) -> None:
    first = ArchiveImage([BASE, MIDDLE], tags=["one:1"])
    second = ArchiveImage([BASE, OTHER], tags=["two:1"])
    load(store, tmp_path, first)
    load(store, tmp_path, second, oci=True)
    assert len(list(store.layer_root.iterdir())) == 3
    base_dir = store.layer_dirs(store.resolve("one:1"))[-1]
    assert store.layer_dirs(store.resolve("two:1"))[-1] == base_dir
    usage = store.disk_usage({first.id})
    base_size = len(b"base\n") + 100
    assert usage.images_count == 2 and usage.images_active == 1
    assert usage.images_shared_size == base_size
    assert usage.images_size == base_size + 10 + 10
    assert usage.images_unique_size == 20
    assert usage.images_reclaimable == 10  # only OTHER is not used by the active image
    assert usage.blobs_size > 0


def test_round_trip_keeps_ids_through_docker_and_oci_readers(
    store: ImageStore, tmp_path: Path
) -> None:
    ids = load(store, tmp_path, three_layer_image(), ArchiveImage([BASE, OTHER], tags=["two:1"]))
    untagged = store.import_rootfs(_write(tmp_path / "r.tar", MIDDLE), "solo")
    # forced removal of an image in use only untags it: a dangling image to save by id
    assert store.remove("solo", force=True, in_use={untagged.id}) == (["solo:latest"], [])
    saved = tmp_path / "saved.tar"
    store.save(["app:1", "two", untagged.id[7:19]], saved)
    with tarfile.open(saved) as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert {"manifest.json", "index.json", "oci-layout"} <= names
    assert [entry["RepoTags"] for entry in manifest] == [["app:1"], ["two:1"], None]

    fresh = ImageStore(tmp_path / "fresh")
    loaded = fresh.load(saved)
    assert [image.id for image in loaded] == [*ids, untagged.id]
    assert fresh.resolve("app:1").id == ids[0]

    rewrite(saved, {"manifest.json": None})  # only the OCI layout is left
    oci_only = ImageStore(tmp_path / "oci-only")
    assert sorted(i.id for i in oci_only.load(saved)) == sorted([*ids, untagged.id])
    assert oci_only.resolve("two:1").id == ids[1]


def test_blob_with_wrong_digest_is_refused(store: ImageStore, tmp_path: Path) -> None:
    image = three_layer_image()
    archive = tmp_path / "oci.tar"
    oci_archive(archive, [image])
    from pyswarm.images.testing import digest

    rewrite(archive, {"blobs/sha256/" + digest(MIDDLE)[7:]: OTHER})
    with pytest.raises(InvalidArchive, match="does not match"):
        store.load(archive)
    assert store.list() == [] and list(store.layer_root.iterdir()) == []
    assert list(store.blob_dir.iterdir()) == [] and list(store.tmp_dir.iterdir()) == []


def test_layer_not_matching_its_diff_id_is_refused(store: ImageStore, tmp_path: Path) -> None:
    archive = tmp_path / "legacy.tar"
    image = three_layer_image()
    docker_archive(archive, [image], legacy=True)
    from pyswarm.images.testing import digest

    rewrite(archive, {digest(MIDDLE)[7:] + "/layer.tar": OTHER})
    with pytest.raises(InvalidArchive, match="does not match diff id"):
        store.load(archive)
    assert store.list() == [] and list(store.layer_root.iterdir()) == []


def test_not_an_image_archive(store: ImageStore, tmp_path: Path) -> None:
    archive = tmp_path / "plain.tar"
    archive.write_bytes(BASE)
    with pytest.raises(InvalidArchive, match="neither a docker save archive"):
        store.load(archive)
    archive.write_bytes(b"not a tar at all")
    with pytest.raises(InvalidArchive, match="not a readable tar"):
        store.load(archive)


def test_resolve_by_tag_id_and_prefix(store: ImageStore, tmp_path: Path) -> None:
    [image_id] = load(store, tmp_path, three_layer_image(["app:1", "app:latest"]))
    for ref in ("app", "app:1", image_id, image_id[7:15], image_id[:15], "docker.io/library/app"):
        assert store.resolve(ref).id == image_id
    with pytest.raises(ImageNotFound) as caught:
        store.resolve("missing:1")
    assert str(caught.value) == "No such image: missing:1"
    assert isinstance(caught.value, NotFound)
    with pytest.raises(ImageNotFound):
        store.resolve("ffff" if not image_id[7:].startswith("ffff") else "eeee")
    with pytest.raises(InvalidReference):
        store.resolve("Bad:Ref!")


def test_tag_moves_a_tag_between_images(store: ImageStore, tmp_path: Path) -> None:
    first, second = load(store, tmp_path, three_layer_image(), ArchiveImage([OTHER], tags=["o:1"]))
    tagged = store.tag("app:1", "o:1")
    assert tagged.id == first and sorted(tagged.repo_tags) == ["app:1", "o:1"]
    assert list(store.resolve(second).repo_tags) == []
    with pytest.raises(InvalidReference, match="UPPER"):
        store.tag("app:1", "UPPER")
    reopened = ImageStore(store.root)
    assert sorted(reopened.resolve(first).repo_tags) == ["app:1", "o:1"]


def test_remove_untags_then_deletes_like_docker_rmi(store: ImageStore, tmp_path: Path) -> None:
    [image_id] = load(store, tmp_path, three_layer_image(["app:1", "app:2"]))
    assert store.remove("app:1", force=False, in_use=set()) == (["app:1"], [])
    assert len(list(store.layer_root.iterdir())) == 3
    assert store.remove("app:2", force=False, in_use=set()) == (["app:2"], [image_id])
    assert store.list() == []
    assert list(store.layer_root.iterdir()) == [] and list(store.blob_dir.iterdir()) == []


def test_remove_refuses_images_in_use(store: ImageStore, tmp_path: Path) -> None:
    [image_id] = load(store, tmp_path, three_layer_image(["app:1"]))
    for ref in ("app:1", image_id):
        with pytest.raises(ImageConflict, match="conflict: unable to") as caught:
            store.remove(ref, force=False, in_use={image_id})
        assert "being used by a container" in str(caught.value)
        assert isinstance(caught.value, FailedPrecondition)
    assert store.remove("app:1", force=True, in_use={image_id}) == (["app:1"], [])
    assert store.layer_dirs(store.resolve(image_id))  # content kept for the container


def test_remove_by_id_of_image_in_several_repositories_needs_force(
    store: ImageStore, tmp_path: Path
) -> None:
    [image_id] = load(store, tmp_path, three_layer_image(["a:1", "b:1"]))
    with pytest.raises(ImageConflict, match="referenced in multiple repositories"):
        store.remove(image_id[7:19], force=False, in_use=set())
    untagged, deleted = store.remove(image_id[7:19], force=True, in_use=set())
    assert sorted(untagged) == ["a:1", "b:1"] and deleted == [image_id]


def test_prune_dangling_then_all(store: ImageStore, tmp_path: Path) -> None:
    app, other = load(store, tmp_path, three_layer_image(), ArchiveImage([BASE, OTHER], ["o:1"]))
    dangling = load(store, tmp_path, ArchiveImage([OTHER], tags=[]))[0]
    deleted, reclaimed = store.prune(all=False, in_use=set())
    assert deleted == [dangling] and reclaimed > 0  # its config and manifest blobs
    other_bytes = 10 + _blob_bytes(store, other)
    assert store.prune(all=True, in_use={app}) == ([other], other_bytes)
    assert [image.id for image in store.list()] == [app]
    assert len(list(store.layer_root.iterdir())) == 3


def _blob_bytes(store: ImageStore, image_id: str) -> int:
    """Bytes of the blobs only this image uses: its config, manifest and OTHER's blob."""
    image = store.resolve(image_id)
    sizes = [(store.blob_dir / d[7:]).stat().st_size for d in (image.id, image.manifest_digest)]
    return sum(sizes) + len(OTHER)


def test_list_is_newest_first(store: ImageStore, tmp_path: Path) -> None:
    imported = store.import_rootfs(_write(tmp_path / "r.tar", BASE), "imported")
    load(store, tmp_path, ArchiveImage([OTHER], tags=["loaded:1"]))
    # created: the import's newest member mtime (2023), the archive's config says 2024
    assert [i.repo_tags[0] for i in store.list()] == ["loaded:1", "imported:latest"]
    assert imported.created_at.ToJsonString().startswith("2023-11-14")


def test_many_layers_keep_short_paths(store: ImageStore, tmp_path: Path) -> None:
    layers = [layer_tar([file(f"f{i}", str(i).encode())]) for i in range(64)]
    [image_id] = load(store, tmp_path, ArchiveImage(layers, tags=["tall:1"]))
    dirs = store.layer_dirs(store.resolve(image_id))
    assert len(dirs) == 64 and all(len(d.name) == 12 for d in dirs)
    assert (dirs[0] / "f63").read_bytes() == b"63"


def test_leftovers_from_a_crash_are_removed_on_open(store: ImageStore, tmp_path: Path) -> None:
    load(store, tmp_path, three_layer_image())
    (store.layer_root / "deadbeef0000").mkdir()
    (store.tmp_dir / "stage-crashed").mkdir()
    (store.blob_dir / ("0" * 64)).write_bytes(b"orphan")
    reopened = ImageStore(store.root)
    assert len(list(reopened.layer_root.iterdir())) == 3
    assert not (reopened.tmp_dir / "stage-crashed").exists()
    assert not (reopened.blob_dir / ("0" * 64)).exists()
    assert reopened.resolve("app:1").layers == store.resolve("app:1").layers


def test_concurrent_loads_store_each_layer_once(store: ImageStore, tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    docker_archive(archive, [three_layer_image()])
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            store.load(archive)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.list()) == 1 and len(list(store.layer_root.iterdir())) == 3
    assert list(store.tmp_dir.iterdir()) == []


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_links_inside_an_archive_are_followed_a_bounded_number_of_times(
    store: ImageStore, tmp_path: Path
) -> None:
    image = ArchiveImage([BASE, BASE], tags=["twice:1"])
    archive = tmp_path / "legacy.tar"
    docker_archive(archive, [image], legacy=True)
    layer_name = f"{image.id[7:]}.json"
    with tarfile.open(archive, "a") as tar:
        for name, target in (
            ("loop-a", "loop-b"),
            ("loop-b", "loop-a"),
            ("again.tar", "x/../" + layer_name),
        ):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, target
            tar.addfile(link)
    entries = [{"Config": "again.tar", "RepoTags": ["twice:1"], "Layers": ["loop-a"]}]
    rewrite(archive, {"manifest.json": json.dumps(entries).encode()})
    with pytest.raises(InvalidArchive, match="too many links"):
        store.load(archive)
    assert store.list() == []
