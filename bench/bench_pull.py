"""Pull of an image with N layers when N-1 are already in the store: bytes moved and time.

A real Distribution registry (docker-registry) on 127.0.0.1 holds two images: the
first N-1 layers, and the same N-1 plus one new layer on top. Each layer is
--layer-mib of random bytes (gzip cannot shrink them). Per round:

- anchor: a full pull of the N-layer image into an empty store;
- incremental: a store that already pulled the (N-1)-layer image pulls the N-layer one.

Bytes are counted at the client's HTTP transport (bodies received); the expected
incremental bytes are the new layer's blob plus the manifest and config.
Run: python -m bench.bench_pull [--layers 5] [--layer-mib 8] [--rounds 3]
Goal (issue 5): incremental bytes moved ~= the new layer. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import machine
from bench.workdir import scratch
from pyswarm.images import ImageStore
from pyswarm.images.registry import RegistryClient, pull, push
from pyswarm.images.testing import ArchiveImage, file, layer_tar, oci_archive
from pyswarm.lab.registry import RegistryServer, free_loopback_address


def _layers(count: int, size: int) -> list[bytes]:
    return [
        layer_tar([file(f"data/{index}.bin", os.urandom(size))], compress=True)
        for index in range(count)
    ]


def _timed_pull(store: ImageStore, name: str, host: str) -> tuple[float, int]:
    client = RegistryClient(host)
    start = time.perf_counter()
    pull(store, name, client=client)
    return time.perf_counter() - start, client.transport.received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--layer-mib", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None, help="scratch parent (default: system temp)")
    args = parser.parse_args()
    with scratch(args.dir) as root:
        registry = RegistryServer(root / "registry", free_loopback_address())
        registry.start()
        try:
            run(root, registry, args.layers, int(args.layer_mib * (1 << 20)), args.rounds)
        finally:
            registry.close()


def run(root: Path, registry: RegistryServer, count: int, size: int, rounds: int) -> None:
    layers = _layers(count, size)
    base = ArchiveImage(layers[:-1], [f"{registry.address}/bench/base:1"])
    full = ArchiveImage(layers, [f"{registry.address}/bench/full:1"])
    source = ImageStore(root / "source")
    oci_archive(root / "images.tar", [base, full])
    source.load(root / "images.tar")
    push(source, base.tags[0])
    push(source, full.tags[0])
    new_layer = len(layers[-1])
    config_and_manifest = sum(
        source.blob_path(d).stat().st_size
        for d in (full.id, source.resolve(full.tags[0]).manifest_digest)
    )
    anchor: list[tuple[float, int]] = []
    incremental: list[tuple[float, int]] = []
    for round_no in range(rounds):
        anchor.append(
            _timed_pull(ImageStore(root / f"anchor{round_no}"), full.tags[0], registry.address)
        )
        store = ImageStore(root / f"incr{round_no}")
        pull(store, base.tags[0])
        incremental.append(_timed_pull(store, full.tags[0], registry.address))
    print(f"# {datetime.now(UTC):%Y-%m-%d}, {machine.describe()}")
    print(f"{count} layers of {size / (1 << 20):.1f} MiB random data (gzip), {rounds} rounds")
    print(f"new layer blob {new_layer} bytes; manifest + config {config_and_manifest} bytes")
    print("| pull | bytes moved (median) | seconds (median) | rounds (s) |")
    print("|---|---|---|---|")
    for label, results in (
        ("full (anchor)", anchor),
        (f"{count - 1} of {count} present", incremental),
    ):
        moved = statistics.median(r[1] for r in results)
        seconds = statistics.median(r[0] for r in results)
        each = " / ".join(f"{r[0]:.3f}" for r in results)
        print(f"| {label} | {moved:.0f} | {seconds:.3f} | {each} |")
    ratio = statistics.median(r[1] for r in incremental) / new_layer
    print(f"incremental bytes / new layer blob = {ratio:.4f}")


if __name__ == "__main__":
    main()
