"""`.dockerignore` matching with docker's rules (pure)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from pyswarm.cli.build import write_context
from pyswarm.cli.dockerignore import Matcher, read_patterns

RULES = """\
# comment line
*.log
!important.log
/build
docs/**/*.md
**/node_modules
temp?
[abc].txt
secret/
"""


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("app.log", True),
        ("important.log", False),
        ("sub/app.log", False),  # `*` does not cross directories
        ("build", True),
        ("build/out/bin", True),  # a matched directory takes its contents
        ("src/build", False),
        ("docs/a.md", True),  # `**/` also matches no directory at all
        ("docs/x/y/b.md", True),
        ("docs/readme.txt", False),
        ("node_modules/x.js", True),
        ("a/b/node_modules/c", True),
        ("temp1", True),
        ("temp12", False),
        ("a.txt", True),
        ("d.txt", False),
        ("secret/key", True),
        ("# comment line", False),
    ],
)
def test_matching(path: str, excluded: bool) -> None:
    assert Matcher(read_patterns(RULES)).excluded(path) is excluded


def test_last_match_wins_and_exceptions_inside_excluded_dirs() -> None:
    matcher = Matcher(read_patterns("logs\n!logs/keep.txt\n"))
    assert matcher.excluded("logs/drop.txt")
    assert not matcher.excluded("logs/keep.txt")
    assert matcher.has_exceptions
    assert Matcher(read_patterns("!a\na\n")).excluded("a")


def _names(root: Path, dockerfile: Path) -> tuple[set[str], str]:
    out = io.BytesIO()
    name = write_context(root, dockerfile, out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        return set(tar.getnames()), name


def test_context_tar_honours_dockerignore_but_sends_dockerfile(tmp_path: Path) -> None:
    for name in ("Dockerfile", "a.txt", "b.log", "logs/drop.txt", "logs/keep.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    (tmp_path / "link").symlink_to("/etc/passwd")
    (tmp_path / ".dockerignore").write_text(
        "*.log\nlogs\n!logs/keep.txt\nDockerfile\n.dockerignore\n"
    )
    names, dockerfile = _names(tmp_path, tmp_path / "Dockerfile")
    assert dockerfile == "Dockerfile"
    assert names == {"Dockerfile", ".dockerignore", "a.txt", "link", "logs/keep.txt"}


def test_dockerfile_outside_the_context_gets_a_name_of_its_own(tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "a").write_text("a")
    outside = tmp_path / "Other.dockerfile"
    outside.write_text("FROM scratch\n")
    names, dockerfile = _names(context, outside)
    assert dockerfile.startswith(".dockerfile.") and names == {"a", dockerfile}
