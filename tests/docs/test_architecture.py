"""docs/architecture.md stays true of the code: the layering it states, the files it names,
and the documents the repository cites all exist."""

from __future__ import annotations

import ast
import importlib
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("hw_models", "workloads", "simulator", "validation", "reports", "roofsim")

#: what each package may import (docs/architecture.md, "Packages, and what each may import")
ALLOWED = {
    "hw_models": set(),
    "workloads": set(),
    "simulator": {"hw_models", "workloads"},
    "validation": {"hw_models", "workloads", "simulator"},
    "reports": {"hw_models"},
    "roofsim": set(FIRST_PARTY),
}
#: the known exceptions the page lists; a new one must be listed there (or fixed) first
EXCEPTIONS: dict[str, set[str]] = {}
#: directories whose files are not the project's own text
SKIP_DIRS = {".git", ".venv", "out", "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache", "node_modules"}
TEXT = {".py", ".md", ".yaml", ".yml", ".toml", ".ipynb", ".j2", ".sh", ".txt", ".cfg", ".json"}


def first_party_imports(path: Path) -> set[str]:
    """Top-level first-party packages ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {n.split(".")[0] for n in names if n.split(".")[0] in FIRST_PARTY}
    return found


def repo_files(suffixes=TEXT):
    for dirpath, dirnames, filenames in os.walk(ROOT):
        here = Path(dirpath)
        # committed datasets are measurements, not prose
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and (here / d) != ROOT / "validation" / "data"]
        yield from (here / f for f in filenames if Path(f).suffix in suffixes)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_what_the_page_allows(package):
    checked = 0
    for f in sorted((ROOT / package).rglob("*.py")):
        rel = f.relative_to(ROOT).as_posix()
        allowed = ALLOWED[package] | {package} | EXCEPTIONS.get(rel, set())
        extra = first_party_imports(f) - allowed
        assert not extra, f"{rel} imports {sorted(extra)}; docs/architecture.md does not allow it"
        checked += 1
    assert checked >= 3  # an empty walk would pass vacuously


def test_the_listed_exceptions_are_still_exceptions():
    # an exception that was fixed should leave the page (and this list) too
    for rel, pkgs in EXCEPTIONS.items():
        package = rel.split("/")[0]
        assert first_party_imports(ROOT / rel) - ALLOWED[package] - {package} == pkgs, rel


def test_the_harness_imports_nothing_first_party():
    # it runs on bare GPU boxes with torch, numpy and pandas only
    for f in sorted((ROOT / "validation" / "harness").glob("*.py")):
        assert first_party_imports(f) <= {"validation"}, f.name
        text = f.read_text()
        assert not re.search(r"^\s*from validation\.(?!harness)", text, re.M), f.name


def test_no_file_cites_a_document_outside_the_repository():
    # built from pieces so that this file does not match itself
    needles = ["DESIGN" + ".md", "ANCHORS" + ".md", "../" + "shared"]
    hits = [f"{p.relative_to(ROOT)}: {n}" for p in repo_files() for n in needles
            if n in p.read_text(errors="replace")]
    assert hits == []


def test_cited_docs_and_sections_exist():
    docs = {p.name: p.read_text() for p in (ROOT / "docs").glob("*.md")}
    assert {"architecture.md", "sources.md"} <= set(docs)
    headings = {name: set(re.findall(r"^#+\s+(.+?)\s*$", text, re.M)) for name, text in docs.items()}
    cited = 0
    for p in repo_files():
        text = p.read_text(errors="replace")
        for name in re.findall(r"docs/([\w-]+\.md)", text):
            assert name in docs, f"{p.relative_to(ROOT)} cites docs/{name}, which does not exist"
            cited += 1
        for name, section in re.findall(r"docs/([\w-]+\.md),? \"([^\"]+)\"", text):
            assert section in headings[name], f"{p.relative_to(ROOT)} cites a section {section!r} of docs/{name}"
    assert cited > 10  # the catalog cites docs/sources.md dozens of times


@pytest.mark.parametrize("doc", ["docs/architecture.md", "docs/sources.md"])
def test_paths_the_docs_name_exist(doc):
    # a renamed module must not leave the map pointing at nothing
    text = (ROOT / doc).read_text()
    # only the project's own folders: sources.md also names files of other repositories
    paths = {m for m in re.findall(r"`([\w./-]+/[\w./-]*)`", text) if m.split("/")[0] in FIRST_PARTY + ("docs",)}
    assert len(paths) > 2
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert missing == []


def _section(title: str) -> str:
    text = (ROOT / "docs" / "architecture.md").read_text()
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_each_extension_point_names_a_registry_and_its_registration():
    # a row per registry: "`NAME` in `path`", and the call that adds to it
    rows = re.findall(r"^\| \*\*(.+?)\*\* \| `(\w+)` in `([\w/]+)\.py` \| (.+) \|$", _section("Extension points"), re.M)
    assert len(rows) >= 6
    for point, registry, path, how in rows:
        module = importlib.import_module(path.replace("/", "."))
        assert isinstance(getattr(module, registry, None), dict), f"{point}: {path}.py has no registry {registry}"
        adders = re.findall(r"`@?(\w+)\(", how)
        assert adders and callable(getattr(module, adders[0], None)), f"{point}: {path}.py has no {adders[:1]}"


def test_the_worked_example_is_the_module_its_test_runs():
    # the page shows the module verbatim, so the example cannot drift from what runs
    block = re.search(r"```python\n(.*?)```", _section("Extension points"), re.S)
    assert block is not None
    assert block.group(1) == (ROOT / "tests" / "workloads" / "squared_relu.py").read_text()
    assert (ROOT / "tests" / "workloads" / "test_extension_example.py").exists()
