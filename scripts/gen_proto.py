"""Regenerate the protobuf and gRPC code in proto/ from the .proto sources.

The sources are compiled as `pyswarm/proto/*.proto` so that the generated modules
import each other as `pyswarm.proto.x_pb2`. `--check` compares instead of writing
(the staleness test uses it).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent.parent / "proto"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def generate(out_dir: Path) -> None:
    """Write the generated files for every .proto source into out_dir."""
    import grpc_tools
    from grpc_tools import protoc

    # protoc finds the mypy plugins on PATH: make it the one beside this interpreter.
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    include = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "src"
        (root / "pyswarm").mkdir(parents=True)
        (root / "pyswarm" / "proto").symlink_to(PROTO_DIR)
        gen = Path(tmp) / "gen"
        gen.mkdir()
        sources = sorted(f"pyswarm/proto/{p.name}" for p in PROTO_DIR.glob("*.proto"))
        rc = protoc.main(
            [
                "protoc",
                f"-I{root}",
                f"-I{include}",
                f"--python_out={gen}",
                f"--grpc_python_out={gen}",
                f"--mypy_out={gen}",
                f"--mypy_grpc_out={gen}",
                *sources,
            ]
        )
        if rc != 0:
            raise SystemExit(f"protoc failed with exit code {rc}")
        for path in (gen / "pyswarm" / "proto").iterdir():
            if path.name.endswith(GENERATED_SUFFIXES):
                (out_dir / path.name).write_bytes(path.read_bytes())


def stale_files() -> list[str]:
    """Names of generated files that differ from what the sources produce now."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate(out)
        stale = []
        for fresh in sorted(out.iterdir()):
            committed = PROTO_DIR / fresh.name
            if not committed.exists() or committed.read_bytes() != fresh.read_bytes():
                stale.append(fresh.name)
        return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if generated code is stale")
    args = parser.parse_args()
    if args.check:
        stale = stale_files()
        if stale:
            print("stale generated code: " + ", ".join(stale), file=sys.stderr)
            return 1
        return 0
    generate(PROTO_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
