"""Reading files a user hands over: bounded in size, text only, YAML without alias bombs.

Topologies and manifests come from anywhere (a download, a typo such as `--topo /dev/zero`),
so reading them must fail with one clear line, never with MemoryError or a long hang.
"""
import yaml

MAX_INPUT_BYTES = 16 * 2 ** 20  # far above any topology or manifest set (5,000 Services: 1 MB)
# nodes of a YAML document once every alias is expanded; an alias bomb of 1 KB reaches 10^9.
# The API server's YAML reader refuses "excessive aliasing" in the same spirit.
MAX_EXPANDED_NODES = 1_000_000


class InputError(Exception):
    """The file cannot be taken as input; the message says why, in a few words."""


def read_text(path: str) -> str:
    """The file's text: UTF-8, without NUL bytes, at most MAX_INPUT_BYTES."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_INPUT_BYTES + 1)
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}")
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(f"larger than {MAX_INPUT_BYTES // 2 ** 20} MiB: not a topology or "
                         "manifest")
    if b"\0" in data:
        raise InputError("a binary file (it holds NUL bytes), not YAML text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text (byte {e.start} is 0x{data[e.start]:02x})")


def check_expansion(node: yaml.Node) -> None:
    """Refuse a composed document that aliases expand beyond MAX_EXPANDED_NODES.

    Counted on the node graph, each shared node's size remembered and no Python recursion, so
    the check takes time in proportion to the text, not to the expansion or the nesting.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack = [(node, False)]
    while stack:
        n, children_done = stack.pop()
        key = id(n)
        if children_done:
            # a node that holds itself (a recursive alias) counts once
            total = 1 + sum(sizes.get(id(c), 1) for c in _children(n))
            open_nodes.discard(key)
            sizes[key] = total
            if total > MAX_EXPANDED_NODES:
                raise InputError(f"line {n.start_mark.line + 1}: YAML aliases expand to more "
                                 f"than {MAX_EXPANDED_NODES:,} values (an alias bomb?)")
            continue
        if key in sizes or key in open_nodes:
            continue
        open_nodes.add(key)
        stack.append((n, True))
        stack.extend((c, False) for c in _children(n))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
