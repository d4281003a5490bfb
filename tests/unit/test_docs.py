"""Every command the README and docs/ show is a real one: `testbed` commands parse with the
command's own parser, `python -m` modules exist, `make` targets exist, and the files they
name are in the repository. (The README's tour is also run for real: see
tests/integration/test_docs.py.)"""
import importlib.util
import re
import shlex

import pytest

from testbed import REPO, manifests
from testbed.api.apply import condensed
from testbed.cli.main import build_parser
from testbed.errors import SpecError
from testbed.model import spec

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(?:sh|console)\n(.*?)^```", re.M | re.S)


def commands():
    """(page, command line) of every command in a sh or console block (in a console block,
    the lines after the `# ` prompt)."""
    out = []
    for page in PAGES:
        for block in BLOCK.findall(page.read_text()):
            for line in block.splitlines():
                line = line.removeprefix("# ").strip()
                if re.match(r"(sudo )?(testbed|make|python -m|vagrant)\b", line):
                    out.append((page.relative_to(REPO), line.split("  #")[0].strip()))
    return out


COMMANDS = commands()
MAKE_TARGETS = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))


def test_the_pages_show_commands():
    assert len(COMMANDS) > 30 and {str(p) for p, _ in COMMANDS} >= {
        "README.md", "docs/modes.md", "docs/manifests-and-services.md", "docs/benchmarks.md"}


@pytest.mark.parametrize("page, line", COMMANDS, ids=[c for _, c in COMMANDS])
def test_a_shown_command_is_a_real_one(page, line):
    words = shlex.split(line.removeprefix("sudo ").split(" | ")[0])  # a pipeline: its first
    if words[0] == "testbed":
        argv = words[1:]
        if argv[:1] == ["exec"] and "--" in argv:  # as main() cuts it
            argv = argv[:argv.index("--")]
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{page}: `{line}` does not parse")
        for option in ("topo", "filename"):
            path = getattr(args, option, None)
            if path:
                assert (REPO / path).exists(), f"{page}: `{line}` names {path}, which is missing"
    elif words[0] == "make":
        assert set(words[1:2]) <= MAKE_TARGETS, f"{page}: `{line}`: no such make target"
    elif words[:2] == ["python", "-m"]:
        assert importlib.util.find_spec(words[2]), f"{page}: `{line}`: no module {words[2]}"


def test_links_between_pages_resolve():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name} links to {target}"


def test_the_examples_are_what_the_pages_say():
    """The example files apply as shown: the bad topology fails with the line the
    topologies page prints, the manifests load, with the warnings the manifests page shows."""
    shown = (REPO / "docs" / "topologies.md").read_text()
    with pytest.raises(SpecError) as err:
        spec.load("docs/examples/bad-topology.yaml")
    assert f"testbed: {err.value}" in shown
    warnings = condensed(manifests.load("docs/examples/netpol-model.yaml").warnings)
    page = (REPO / "docs" / "manifests-and-services.md").read_text()
    assert all(f"warning: {w}" in page for w in warnings[:2])
    for example in ("shop.yaml", "network-policy-demo.yaml", "traffic.yaml", "zoned.yaml"):
        assert manifests.load(f"docs/examples/{example}").warnings == []
