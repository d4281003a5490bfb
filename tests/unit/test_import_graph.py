"""The import graph docs/internals.md draws is the code's: every package's imports of other
testbed packages, read by grimp (import-linter's graph builder) from the sources."""
import re
from pathlib import Path

import grimp

INTERNALS = Path(__file__).resolve().parents[2] / "docs" / "internals.md"


def drawn() -> dict[str, set[str]]:
    text = INTERNALS.read_text()
    block = text.split("<!-- import graph -->", 1)[1].split("<!-- /import graph -->", 1)[0]
    out = {}
    for line in block.splitlines():
        m = re.match(r"^\s+(\w+)\s+→\s+(.*)$", line)
        if m:
            names = m.group(2)
            out[m.group(1)] = set() if names.startswith("(") else set(names.split(", "))
    return out


def actual() -> dict[str, set[str]]:
    graph = grimp.build_graph("testbed")
    packages = {m.split(".")[1] for m in graph.modules if m.count(".") >= 1}
    out = {}
    for package in packages:
        name = f"testbed.{package}"
        deps = set()
        for module in graph.find_descendants(name) | {name}:
            deps |= {imported.split(".")[1]
                     for imported in graph.find_modules_directly_imported_by(module)
                     if imported.startswith("testbed.") and imported.split(".")[1] != package}
        out[package] = deps
    return out


def test_the_drawn_import_graph_is_the_codes():
    assert drawn() == actual()


def test_no_package_reaches_back_up_through_another():
    """No cycle at package level: a package never imports, through any chain, itself."""
    graph = actual()

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for dep in graph.get(todo.pop(), ()):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    assert [p for p in graph if p in reachable(p)] == []
