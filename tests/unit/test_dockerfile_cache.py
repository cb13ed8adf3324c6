"""The build cache: keys, persistence, and the intermediate-image rules (pure)."""

from __future__ import annotations

from pathlib import Path

from pyswarm.images.build.cache import BuildCache, ancestors, intermediate, step_key


def test_keys_depend_on_parent_text_and_sources() -> None:
    base = step_key("sha256:p", "RUN true")
    assert base == step_key("sha256:p", "RUN true")
    assert base != step_key("sha256:q", "RUN true")
    assert base != step_key("sha256:p", "RUN false")
    assert step_key("sha256:p", "COPY a b", "sha256:1") != step_key("sha256:p", "COPY a b", "x")


def test_entries_survive_a_reopen_and_vanish_with_their_image(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    cache = BuildCache(path)
    cache.record("k1", "img1", "base", ["img1", "base"])
    cache.record("k2", "img2", "img1", ["img1", "img2", "base"], uses=["other"])
    reopened = BuildCache(path)
    assert reopened.lookup("k2", lambda _: True) == "img2"
    assert reopened.lookup("k2", lambda image: image != "img2") is None  # image removed
    assert reopened.parents() == {"img1": "base", "img2": "img1"}
    assert reopened.links()["img2"] == ["img1", "other"]
    reopened.record("k3", "img3", "base", ["img3", "base"])  # img1, img2 are gone now
    assert BuildCache(path).lookup("k1", lambda _: True) is None
    assert BuildCache(path).parents() == {"img3": "base"}


def test_unreadable_cache_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    path.write_text("{not json")
    assert BuildCache(path).lookup("k", lambda _: True) is None


def test_intermediate_and_ancestors() -> None:
    links = {"final": ["step2"], "step2": ["step1", "builder"], "step1": ["base"]}
    images = {"final": True, "step2": False, "step1": False, "base": True, "builder": False}
    assert intermediate(images, links) == {"step2", "step1", "builder"}
    assert ancestors({"final"}, links) == {"step2", "step1", "builder", "base"}
    # once the final image is gone its chain is no longer hidden
    del images["final"]
    assert intermediate(images, links) == {"step1", "builder"}
    assert ancestors(set(), links) == set()
