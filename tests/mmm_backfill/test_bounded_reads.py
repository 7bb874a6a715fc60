"""The roles read objects only through the storage module's bounded reads (a check of the source, no server)."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The project's packages; tests, the benchmark and the storage module itself are not among them.
PACKAGES = ("aggregator", "worker", "producer", "mmm_backfill", "command_line", "local_stack")
#: Storage methods that download without a limit: for objects this project wrote, in tests and tools.
UNBOUNDED = {"read", "download"}


def storage_calls(path: Path) -> list[tuple[int, str]]:
    """``(line, method)`` of each call ``<...>storage.<method>(...)`` in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name.endswith("storage"):
                found.append((node.lineno, node.func.attr))
    return found


SOURCES = sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py") if p.name != "storage.py")


def test_production_code_never_downloads_without_a_limit():
    unbounded = [
        f"{path.relative_to(REPO)}:{line} storage.{method}"
        for path in SOURCES
        for line, method in storage_calls(path)
        if method in UNBOUNDED
    ]
    assert unbounded == [], "use read_object / download_object (bounded) instead"


def test_the_check_sees_the_bounded_reads_it_allows():
    calls = {method for path in SOURCES for _, method in storage_calls(path)}
    assert {"read_object", "download_object", "copy", "stat", "list"} <= calls
