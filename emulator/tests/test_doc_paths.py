"""The emulator's documentation and sources cite the reference files by their own names or by paths inside the
repository, never by a path of one machine or a folder outside the repository (issue 18)."""

import pathlib
import re

import pytest

EMULATOR = pathlib.Path(__file__).resolve().parents[1]
REPOSITORY = EMULATOR.parent
# Absolute paths of a particular machine, and the project folders that live beside the repository, not in it.
MACHINE_PATH = re.compile(r"(?<![\w.~-])(/work/|/home/|/Users/|/root/|[A-Z]:\\\\|\.\./shared/|shared/reference/|shared/fixtures/)")


def _files():
    roots = [EMULATOR / "README.md", EMULATOR / "docs", EMULATOR / "graph_emulator", REPOSITORY / "docs"]
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.suffix in (".md", ".rst", ".py", ".txt") and "__pycache__" not in path.parts:
                    yield path


@pytest.mark.parametrize("path", list(_files()), ids=lambda path: str(path.relative_to(REPOSITORY)))
def test_no_machine_paths(path):
    found = [(number, line.strip()) for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if MACHINE_PATH.search(line)]
    assert found == [], f"{path.relative_to(REPOSITORY)} cites a path outside the repository: {found[:3]}"


def test_the_pattern_catches_what_it_is_for():
    assert MACHINE_PATH.search("see /work/shared/reference/graph-api.md")
    assert MACHINE_PATH.search("follows `../shared/reference/graph-api.md`")
    assert not MACHINE_PATH.search("the Graph reference (graph-api.md, section 5)")
    assert not MACHINE_PATH.search("emulator/docs/tenant-format.md")
